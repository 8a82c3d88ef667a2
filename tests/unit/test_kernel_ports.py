"""The test servers' kernel ports stay taken from their choice until the kernel is gone
(``tests/kernel_ports.py``)."""

from __future__ import annotations

import socket
import subprocess
import sys

import zmq
from jupyter_client.connect import LocalPortCache
from kernel_ports import HeldPortCache

#: another process binding a port (a kernel of another test worker's server)
BIND = """
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    print("refused", e.errno)
else:
    print("bound")
"""


def bind_from_another_process(port: int) -> str:
    result = subprocess.run(
        [sys.executable, "-c", BIND, str(port)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def test_the_port_cache_of_the_test_process_holds_its_ports() -> None:
    assert isinstance(LocalPortCache.instance(), HeldPortCache)


def test_a_chosen_port_is_refused_to_others_and_bound_by_the_kernels_zmq_socket() -> None:
    cache = HeldPortCache()
    port = cache.find_available_port("127.0.0.1")
    try:
        assert bind_from_another_process(port).startswith("refused")
        assert all(free_port() != port for _ in range(2000))
        context = zmq.Context()
        listener = context.socket(zmq.ROUTER)
        try:
            listener.bind(f"tcp://127.0.0.1:{port}")  # what the kernel does
        finally:
            listener.close(linger=0)
            context.term()
    finally:
        cache.return_port(port)
    assert port not in cache.currently_used_ports
    assert bind_from_another_process(port) == "bound"


def free_port() -> int:
    """A port as ``bind(0)`` hands it out (jupyter_client's own choice, anyone's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
