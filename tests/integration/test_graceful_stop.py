"""SIGTERM, or SIGINT without a terminal (how JupyterHub stops single-user servers), stops a
busy server cleanly: rooms open, a cell running, a kernel restarting.

The server must exit by itself (exit status 0, no SIGKILL needed) and take every kernel it
started with it: the session kernels, the pooled one, and the kernel the interrupted restart
was bringing up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from helpers import Server, finished, text_of, write_notebook
from httpx_ws import WebSocketDisconnect, aconnect_ws
from servers import ServerProcess

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook

#: how long a graceful stop may take before it counts as hung (the hangs it guards against
#: lasted until a SIGKILL; on two busy cores a healthy stop takes a few seconds, most of it
#: the interpreter's own teardown)
STOP_HANG_S = 20.0
DEADLINE_S = 90

#: a kernel whose exit takes seconds (an exit hook that sleeps), so that a restart of it is
#: still under way when the server is told to stop
SLOW_EXIT = "import atexit, time\natexit.register(time.sleep, 3)\nprint('armed', flush=True)"
LOOP = "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.05)"


def kernels_of(state: Path) -> list[psutil.Process]:
    """The running kernel processes whose connection file is under ``state`` (children of
    the server or not: a kernel outliving it is reparented)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(
            str(state) in part and "kernel" in part for part in cmdline
        ):
            found.append(process)
    return found


@contextlib.asynccontextmanager
async def lab_room(server: Server, path: str) -> AsyncIterator[None]:
    """A JupyterLab-like connection to the notebook's room, open for the block."""
    session = await server.session(path)
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    async with aconnect_ws(url, server.http) as ws:
        await ws.receive_bytes()  # the server's sync step 1: the room is open
        yield


async def restarting(nb: LiveNotebook) -> asyncio.Task[None]:
    """Ask for a kernel restart and return once it is under way (the request's task)."""
    restart = asyncio.ensure_future(nb.restart())
    settings = {"type": "settings", "id": "main"}
    await nb.wait_for(
        lambda n: (n.get_one(settings) or {}).get("backend_state") == "starting",
        timeout=DEADLINE_S,
    )
    return restart


@pytest.fixture
def server_process(tmp_path) -> ServerProcess:
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "busy.ipynb", [LOOP])
    write_notebook(root / "restarted.ipynb", [SLOW_EXIT])
    config = {
        "KernelPool": {"size": 1, "launch_delay_ms": 0},
        "CocalcSync": {"autosave_delay": 0.2},
    }
    process = ServerProcess(root, tmp_path / "state", config=config)
    yield process
    process.kill()


# ipykernel, shut down while a cell runs: the interrupted cell's reply goes to a closed socket
# and the kernel prints the error on its way out (the server's log holds the kernel's stderr)
@pytest.mark.expect_errors(r"zmq\.error\.ZMQError: Socket operation on non-socket")
@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_a_stop_signal_stops_a_busy_server_and_its_kernels(server_process, stop_signal):
    server_process.start()
    server = Server(server_process.url, server_process.token)
    client = CocalcSyncClient(server.base_url, server.token)
    try:
        busy = await client.open("busy.ipynb")
        restarted = await client.open("restarted.ipynb")
        await restarted.run(["cell-0"])
        await restarted.wait_for(lambda n: finished(n, "cell-0"), timeout=DEADLINE_S)
        assert "armed" in text_of(restarted.get_one({"type": "cell", "id": "cell-0"}))
        async with lab_room(server, "busy.ipynb"), lab_room(server, "restarted.ipynb"):
            await busy.run(["cell-0"])
            await busy.wait_for(
                lambda n: "started" in text_of(n.get_one({"type": "cell", "id": "cell-0"})),
                timeout=DEADLINE_S,
            )
            restart = await restarting(restarted)
            assert kernels_of(server_process.state)  # what must go with the server

            assert server_process.process is not None
            started = time.monotonic()
            server_process.process.send_signal(stop_signal)
            code = await asyncio.to_thread(server_process.wait_for_exit, STOP_HANG_S)
            took = time.monotonic() - started
            with contextlib.suppress(Exception):  # answered or cut off: either is fine
                await restart
    finally:
        with contextlib.suppress(Exception):  # the server is gone: its sockets are closed
            await client.close()
        await server.aclose()
    assert code == 0, f"exit status {code} after {took:.1f} s"
    left = kernels_of(server_process.state)
    assert not left, [" ".join(p.cmdline()) for p in left]
    log = server_process.log()
    assert "InvalidStateError" not in log, log[-3000:]


async def test_a_stopping_server_closes_every_room_client_with_going_away(server_process):
    """Each room client, the awareness-only rooms' included, gets a close frame (1001, the
    code a client reconnects on) rather than a socket that just drops; the stop waits for
    what it was sending them, so no write is cut off with the event loop."""
    server_process.start()
    server = Server(server_process.url, server_process.token)
    session = await server.session("busy.ipynb")
    notebook_room = f"json:notebook:{session['fileId']}?sessionId={session['sessionId']}"
    closes: list[tuple[int, str]] = []
    try:
        async with (
            aconnect_ws(
                server.ws_url("/api/collaboration/room/" + notebook_room), server.http
            ) as notebook,
            aconnect_ws(
                server.ws_url("/api/collaboration/room/JupyterLab:globalAwareness"), server.http
            ) as awareness,
        ):
            await notebook.receive_bytes()  # the server's sync step 1: both rooms are open
            await awareness.receive_bytes()
            assert server_process.process is not None
            server_process.process.send_signal(signal.SIGTERM)
            for ws in (notebook, awareness):
                with pytest.raises(WebSocketDisconnect) as closed:
                    while True:
                        await ws.receive_bytes()
                closes.append((closed.value.code, closed.value.reason))
            code = await asyncio.to_thread(server_process.wait_for_exit, STOP_HANG_S)
    finally:
        await server.aclose()
    assert closes == [(1001, "the server is stopping")] * 2
    assert code == 0
    assert "Task was destroyed but it is pending" not in server_process.log()
