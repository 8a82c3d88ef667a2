"""Kernel ports that no other process can take between their choice and the kernel's bind.

jupyter_client's ``LocalPortCache`` chooses a kernel's five TCP ports by binding port 0 and
closing the socket; the kernel binds them a second or more later (its interpreter starting).
Meanwhile any process on the machine can be handed the same port: another test worker's
server choosing ports for its kernel, or any outgoing connection's local port. The kernel then
dies with "Address already in use" (seen once in a parallel run).

``HeldPortCache`` chooses ports the same way but keeps each one bound, with ``SO_REUSEADDR``
and without listening, until jupyter_client returns it (the kernel shut down for good). Linux
hands a bound port to no other ``bind(0)`` and no outgoing connection, and refuses it to a
plain ``bind``; the kernel's ZeroMQ listener (which sets ``SO_REUSEADDR``) binds it all the
same. The kernels stay real ipykernel processes on TCP, as users run them.

``install()`` makes it the process's port cache: the test process calls it (kernels of the
in-process servers), and ``config_file_lines`` is what a subprocess server's Jupyter config
runs to do the same (``servers.ServerProcess.write_config``).
"""

from __future__ import annotations

import socket
from pathlib import Path

from jupyter_client.connect import LocalPortCache


class HeldPortCache(LocalPortCache):
    """``LocalPortCache`` whose ports stay bound (not listening) while they are in use."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._held: dict[int, socket.socket] = {}

    def find_available_port(self, ip: str) -> int:
        holder = socket.socket()
        try:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind((ip, 0))  # never a port another socket is bound to
        except OSError:
            holder.close()
            raise
        port: int = holder.getsockname()[1]
        self.currently_used_ports.add(port)
        self._held[port] = holder
        return port

    def return_port(self, port: int) -> None:
        super().return_port(port)
        if (holder := self._held.pop(port, None)) is not None:
            holder.close()


def install() -> None:
    """Make ``HeldPortCache`` the port cache every local kernel start of this process uses."""
    if not isinstance(LocalPortCache._instance, HeldPortCache):
        LocalPortCache.clear_instance()
        HeldPortCache.instance()


def config_file_lines() -> str:
    """A Jupyter config file's lines that ``install()`` in the server reading it."""
    tests = str(Path(__file__).resolve().parent)
    return f"import sys\nsys.path.append({tests!r})\nimport kernel_ports\nkernel_ports.install()\n"
