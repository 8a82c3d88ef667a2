"""A pooled kernel's first websocket: no kernel_info round trips, and nothing lost for it.

The first browser websocket to a kernel just taken from the pool uses the kernel_info the pool
already has and the iopub subscription the pool kept open (proven by the warm-up cell), instead
of jupyter_server's handshake; the re-pointing code runs while the session's answer travels.
These tests run the first cell through a real ``/api/kernels/<id>/channels`` websocket as
JupyterLab does, and check that its first output, its folder and its count are right on every
path: the head start used, a second websocket, a restart before the websocket, and a kernel
that fails the re-pointing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import start_session

from jupyter_cocalc_sync.pool.manager import PoolingKernelManager

DEADLINE_S = 30

#: a pool of one kernel that is not refilled during the test: the refill would be a kernel
#: booting that no test here but the one of kernels claimed in turn (``REFILLED``) looks at
pytestmark = pytest.mark.pool(launch_delay_ms=600_000)
REFILLED = pytest.mark.pool(launch_delay_ms=0)


@pytest.fixture
def manager(jp_serverapp, jp_asyncio_loop) -> PoolingKernelManager:
    """The server's kernel manager, its pool full."""
    km = jp_serverapp.kernel_manager
    assert isinstance(km, PoolingKernelManager)
    km.start_pool()
    jp_asyncio_loop.run_until_complete(km.pool.wait_ready(timeout=DEADLINE_S))
    return km


async def start_kernel(jp_fetch, path: str) -> str:
    """The kernel id of a new notebook session (a pooled kernel's, as the pool is full)."""
    return (await start_session(jp_fetch, path))["kernel"]["id"]


class Channels:
    """One kernel websocket, jupyter_server's JSON protocol, as JupyterLab speaks it."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.session = uuid.uuid4().hex

    @classmethod
    async def open(cls, jp_ws_fetch, kernel_id: str) -> Channels:
        session = uuid.uuid4().hex
        ws = await jp_ws_fetch(
            "api", "kernels", kernel_id, "channels", params={"session_id": session}
        )
        channels = cls(ws)
        channels.session = session
        return channels

    async def request(self, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session,
            "username": "test",
            "version": "5.4",
            "date": datetime.now(UTC).isoformat(),
        }
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        await self.ws.write_message(json.dumps({**message, "channel": "shell", "buffers": []}))
        return msg_id

    async def run(self, code: str) -> dict[str, Any]:
        """Run ``code``: its stdout, its result's text and its execute_reply content."""
        content = {"code": code, "silent": False, "store_history": True, "allow_stdin": False}
        msg_id = await self.request("execute_request", {**content, "user_expressions": {}})
        result: dict[str, Any] = {"stdout": "", "result": None, "reply": None, "idle": False}
        while result["reply"] is None or not result["idle"]:
            raw = await asyncio.wait_for(self.ws.read_message(), DEADLINE_S)
            assert raw is not None, "the websocket closed"
            msg = json.loads(raw)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream" and msg["content"]["name"] == "stdout":
                result["stdout"] += msg["content"]["text"]
            elif kind == "execute_result":
                result["result"] = msg["content"]["data"]["text/plain"]
            elif kind == "execute_reply":
                result["reply"] = msg["content"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                result["idle"] = True
        return result

    def close(self) -> None:
        self.ws.close()


async def first_cell(jp_ws_fetch, kernel_id: str, said: str) -> dict[str, Any]:
    """Open a websocket and run a cell that prints ``said`` and shows the working directory."""
    channels = await Channels.open(jp_ws_fetch, kernel_id)
    try:
        return await channels.run(f"import os\nprint({said!r})\nos.getcwd()")
    finally:
        channels.close()


def assert_first_cell(ran: dict[str, Any], said: str, folder: Path) -> None:
    """The cell's first output came, it ran in ``folder``, and it is ``In [1]``."""
    assert ran["stdout"] == f"{said}\n"
    assert ran["result"] == repr(str(folder))
    assert ran["reply"]["status"] == "ok"
    assert ran["reply"]["execution_count"] == 1


def head_starts_used(manager: PoolingKernelManager) -> int:
    return manager.pool_status()["head_starts"]["used"]


@REFILLED
async def test_first_websockets_take_the_head_start_and_lose_no_output(
    jp_fetch, jp_ws_fetch, jp_root_dir, manager
):
    # Three pooled kernels in turn: a missed subscription would lose the first output now and
    # then, not every time.
    for n in range(3):
        folder = jp_root_dir / f"project{n}"
        folder.mkdir()
        kernel_id = await start_kernel(jp_fetch, f"project{n}/nb.ipynb")
        ran = await first_cell(jp_ws_fetch, kernel_id, "first output")
        assert_first_cell(ran, "first output", folder)
        assert head_starts_used(manager) == n + 1
        assert manager.claims.head_start(kernel_id) is None
        await manager.pool.wait_ready(timeout=DEADLINE_S)


async def test_a_second_websocket_connects_as_stock(jp_fetch, jp_ws_fetch, manager):
    kernel_id = await start_kernel(jp_fetch, "nb.ipynb")
    first = await Channels.open(jp_ws_fetch, kernel_id)
    second = await Channels.open(jp_ws_fetch, kernel_id)
    try:
        assert head_starts_used(manager) == 1
        ran = await second.run("print('from the second tab'); 6 * 7")
        assert ran["stdout"] == "from the second tab\n"
        assert ran["result"] == "42"
        assert ran["reply"]["execution_count"] == 1
        assert (await first.run("'first tab'"))["result"] == "'first tab'"
    finally:
        first.close()
        second.close()


async def test_a_restart_before_the_websocket_voids_the_head_start(
    jp_fetch, jp_ws_fetch, jp_root_dir, manager
):
    (jp_root_dir / "work").mkdir()
    kernel_id = await start_kernel(jp_fetch, "work/nb.ipynb")
    # the subscription was made to the process the restart replaces
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}")
    ran = await first_cell(jp_ws_fetch, kernel_id, "after the restart")
    assert_first_cell(ran, "after the restart", jp_root_dir / "work")
    assert head_starts_used(manager) == 0
    assert manager.claims.head_start(kernel_id) is None


def kernel_chdir(action: str) -> None:
    """Make ``os.chdir`` in kernels run ``action`` (Python, with ``path``) for folders named
    ``unusual*``: an IPython startup file, written before the pool starts its kernel."""
    import os

    startup = Path(os.environ["IPYTHONDIR"]) / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-unusual-chdir.py").write_text(
        "import os, time\n"
        "_chdir = os.chdir\n"
        "def _unusual(path):\n"
        "    if 'unusual' in str(path):\n"
        f"        {action}\n"
        "    _chdir(path)\n"
        "os.chdir = _unusual\n"
    )


@pytest.fixture
def chdir_refused(isolated_jupyter_env) -> str:
    """A folder the kernels' ``os.chdir`` refuses: the re-pointing code fails there."""
    kernel_chdir("raise PermissionError(path)")
    return "unusual-refused"


@pytest.fixture
def chdir_refused_when_told(isolated_jupyter_env) -> str:
    """A folder the kernels' ``os.chdir`` refuses once a file ``go`` is in it: the test acts
    while the failing re-pointing still runs."""
    kernel_chdir(
        "while not os.path.exists(os.path.join(path, 'go')): time.sleep(0.01)\n"
        "        raise PermissionError(path)"
    )
    return "unusual-refused-when-told"


@pytest.fixture
def chdir_slow(isolated_jupyter_env) -> str:
    """A folder the kernels' ``os.chdir`` takes 2 s to enter: the re-pointing is still running
    when the next request comes."""
    kernel_chdir("time.sleep(2)")
    return "unusual-slow"


async def test_a_kernel_that_fails_the_repointing_is_restarted_in_the_notebook_folder(
    chdir_refused, jp_fetch, jp_ws_fetch, jp_root_dir, manager
):
    (jp_root_dir / chdir_refused).mkdir()
    pooled_pids = set(manager.pool.kernel_pids())
    kernel_id = await start_kernel(jp_fetch, f"{chdir_refused}/nb.ipynb")
    # the websocket waits for the kernel to be ready: here, restarted
    ran = await first_cell(jp_ws_fetch, kernel_id, "restarted")
    assert_first_cell(ran, "restarted", jp_root_dir / chdir_refused)
    assert manager.get_kernel(kernel_id).provisioner.pid not in pooled_pids
    assert manager.pool_status()["counters"]["repoint_failed"] == 1


async def test_a_kernel_restarted_for_its_repointing_does_not_keep_the_old_processs_state(
    chdir_refused_when_told, jp_fetch, jp_root_dir, manager
):
    # jupyter_server nudges a new websocket's kernel until its iopub answers, unless the kernel
    # is busy: a restarted kernel that kept the old process's last status (busy with the
    # failed re-pointing) got its websocket's first request run before its iopub subscription
    # reached the new process, and the cell's output was lost
    folder = jp_root_dir / chdir_refused_when_told
    folder.mkdir()
    kernel_id = await start_kernel(jp_fetch, f"{chdir_refused_when_told}/nb.ipynb")
    settling = manager.claims.when_settled(kernel_id)
    assert settling is not None  # (the re-pointing waits for the file)
    (folder / "go").touch()
    await asyncio.wait_for(settling, DEADLINE_S)
    # (the new process has not said anything yet: it is still starting)
    assert manager.get_kernel(kernel_id).execution_state == "starting"
    assert manager.pool_status()["counters"]["repoint_failed"] == 1


async def test_a_head_start_nobody_takes_is_closed(jp_fetch, jp_ws_fetch, manager, monkeypatch):
    import jupyter_cocalc_sync.pool.claims as claims_module

    monkeypatch.setattr(claims_module, "HEAD_START_TTL_S", 0.1)
    kernel_id = await start_kernel(jp_fetch, "nb.ipynb")  # a REST-only user: no websocket
    head_start = manager.claims.head_start(kernel_id)
    assert head_start is not None and head_start.iopub is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while manager.pool_status()["head_starts"]["waiting"]:
        assert loop.time() < deadline, "the head start was never closed"
        await asyncio.sleep(0.05)
    assert head_start.iopub is None  # its subscription closed, not left to the kernel's end
    assert (await first_cell(jp_ws_fetch, kernel_id, "late"))["stdout"] == "late\n"
    assert head_starts_used(manager) == 0


@pytest.mark.parametrize("action", ["shutdown", "restart", "interrupt"])
async def test_a_kernel_still_being_repointed_can_be_stopped_restarted_or_interrupted(
    chdir_slow, jp_fetch, jp_ws_fetch, jp_root_dir, manager, action
):
    (jp_root_dir / chdir_slow).mkdir()
    kernel_id = await start_kernel(jp_fetch, f"{chdir_slow}/nb.ipynb")
    assert manager.claims.when_settled(kernel_id) is not None  # still re-pointing
    if action == "shutdown":
        r = await jp_fetch("api", "kernels", kernel_id, method="DELETE")
        assert r.code == 204
        assert kernel_id not in manager
    else:
        r = await jp_fetch("api", "kernels", kernel_id, action, method="POST", body="{}")
        assert r.code in (200, 204)
        ran = await first_cell(jp_ws_fetch, kernel_id, action)
        assert_first_cell(ran, action, jp_root_dir / chdir_slow)
    # the request waited for the re-pointing (or let it be): it is not taken for a failure
    assert manager.pool_status()["counters"]["repoint_failed"] == 0
