"""A kernel killed (SIGKILL) or frozen (SIGSTOP) at each step of a request never stalls the server.

Each test runs on a real ``jupyter server`` in a subprocess with real ipykernel kernels (one
the module's tests without a kernel pool share, each in a folder of its own; a server of its
own for a test of the pool, whose state at the server's start matters), signals
a kernel process at one step (claim from the pool, run, interrupt, restart, the kernel_info
handshake, change kernel), and shows that:

* the server keeps answering other requests (``GET /api/status``, asked about twenty times a
  second by a probe process) during the fault and after it: every one answered 200, none held
  for seconds (a server waiting on the faulty kernel would hold them until a kernel timeout;
  how fast it answers is measured in bench/, not asserted here);
* the affected request or cell ends, with a clear error where the kernel died.

Every process a test stopped is continued or killed at teardown, with the server's kernels
(on the shared server: shut down, the next test starts with none).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nbformat
import psutil
import pytest
from helpers import write_notebook
from servers import ServerProcess

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook

#: an answer to another request held this long means the server waits on the faulty kernel
STALLED_S = 5.0
DEADLINE_S = 90
#: A cell that runs until interrupted. Short sleeps: a SIGINT that arrives while the kernel is
#: stopped may be taken by any of its threads, and a long sleep would not notice it.
LONG_CELL = "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.05)"

#: a pool of one kernel that is not refilled during the test: a refill is a second kernel
#: booting at full speed, which on a small machine slows every process, the server included
NO_REFILL = pytest.mark.pool(launch_delay_ms=600_000)

pytestmark = pytest.mark.slow


# -- the server, its kernel processes, and the faults ---------------------------------------


class FaultyServer:
    """A server subprocess, its kernel processes, and the signals a test sent them.

    ``path`` is the test's notebook: in a folder of its own on a server tests share.
    """

    def __init__(self, process: ServerProcess, folder: str = "") -> None:
        self.process = process
        self.path = f"{folder}/nb.ipynb" if folder else "nb.ipynb"
        self.http = httpx.AsyncClient(
            base_url=process.url, headers={"Authorization": f"token {process.token}"}, timeout=60
        )
        self.client = CocalcSyncClient(process.url, process.token)
        self.stopped: set[int] = set()

    def signal(self, pid: int, signum: int) -> None:
        if signum == signal.SIGSTOP:
            self.stopped.add(pid)
        os.kill(pid, signum)

    def kernel_pids(self) -> dict[str, int]:
        """Live kernel processes of the server by kernel id (pooled ones included)."""
        pids: dict[str, int] = {}
        assert self.process.process is not None
        for child in psutil.Process(self.process.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                for arg in child.cmdline():
                    if match := re.search(r"kernel-([\w-]+)\.json$", arg):
                        pids[match.group(1)] = child.pid
        return pids

    async def session_kernel_pid(self) -> int | None:
        sessions = (await self.http.get("/api/sessions")).json()
        ids = [s["kernel"]["id"] for s in sessions if s["path"] == self.path and s.get("kernel")]
        return self.kernel_pids().get(ids[0]) if ids else None

    async def pooled_pids(self) -> list[int]:
        claimed = {k["id"] for k in (await self.http.get("/api/kernels")).json()}
        return [pid for kernel_id, pid in self.kernel_pids().items() if kernel_id not in claimed]

    async def pool_ready(self) -> bool:
        pool = (await self.http.get("/api/cocalc-sync/kernels")).json()["pool"]
        return any(k["ready"] for k in pool["kernels"].values())

    async def open(self, cells: list[str]) -> LiveNotebook:
        write_notebook(self.process.root / self.path, cells)
        return await self.client.open(self.path)

    async def post(self, what: str, body: dict | None = None) -> httpx.Response:
        url = f"/api/cocalc-sync/notebooks/{self.path}/{what}"
        return await self.http.post(url, json=body or {})

    def continue_stopped(self) -> None:
        for pid in self.stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    async def shut_down_kernels(self) -> None:
        """Shut down every kernel of the server (a shared server's next test starts with none)."""
        for kernel in (await self.http.get("/api/kernels")).json():
            response = await self.http.delete(f"/api/kernels/{kernel['id']}")
            assert response.status_code in (204, 404), response.text

        async def none_left() -> bool:
            return not self.kernel_pids()

        await until(none_left, "the kernels of the test to exit")

    def cleanup(self) -> None:
        """Continue what we stopped, stop the server, kill every kernel that outlived it."""
        self.continue_stopped()
        stop_server(self.process)


def start_server(tmp: Path, pool_config: dict) -> ServerProcess:
    root = tmp / "root"
    root.mkdir()
    config = {
        "KernelPool": pool_config,
        "CocalcSync": {"autosave_delay": 0.5, "document_cleanup_delay": 5},
        # jupyter_server's restarter checks every second, not every three
        "KernelRestarter": {"time_to_dead": 1.0},
    }
    process = ServerProcess(root, tmp / "state", config=config)
    try:
        process.start()
        warm_up(process)
    except BaseException:  # (re-raised: the server and its kernels stopped first)
        stop_server(process)
        raise
    return process


def stop_server(process: ServerProcess) -> None:
    """Stop the server, kill every kernel that outlived it."""
    if process.process is None:
        return
    family: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        family = psutil.Process(process.process.pid).children(recursive=True)
    process.stop()
    for proc in family:
        with contextlib.suppress(psutil.Error):
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """A server without a kernel pool that the tests marked ``ON_SHARED_SERVER`` take turns on:
    its start-up is paid once."""
    process = start_server(tmp_path_factory.mktemp("shared-server"), {"size": 0})
    try:
        yield process
    finally:
        stop_server(process)


#: the test runs on the module's shared server, in a folder of its own, and shuts down its
#: kernels at the end; the others (a pool's state at the server's start matters to them) start
#: a server of their own
ON_SHARED_SERVER = pytest.mark.usefixtures("shared_server")


@pytest.fixture
def faulty(request, tmp_path, kernel_pool_config, jp_asyncio_loop) -> Iterator[FaultyServer]:
    shared = "shared_server" in request.fixturenames
    if shared:
        process: ServerProcess = request.getfixturevalue("shared_server")
        (process.root / tmp_path.name).mkdir()
        server = FaultyServer(process, tmp_path.name)
    else:
        server = FaultyServer(start_server(tmp_path, kernel_pool_config))
    try:
        yield server
    finally:
        jp_asyncio_loop.run_until_complete(server.client.close())
        if shared:
            server.continue_stopped()
            jp_asyncio_loop.run_until_complete(server.shut_down_kernels())
        else:
            server.cleanup()
        jp_asyncio_loop.run_until_complete(server.http.aclose())


def warm_up(process: ServerProcess) -> None:
    """Pay the server's one-time costs before anything is measured.

    First uses in jupyter_server and its libraries initialise lazily on the event loop (the
    notebook-signature database on the first save, kernel provisioners on the first kernelspec
    listing, pycrdt's async backend on the first open), taking tens of milliseconds each on a
    busy machine; they have nothing to do with kernel faults.
    """
    headers = {"Authorization": f"token {process.token}"}
    with httpx.Client(base_url=process.url, headers=headers, timeout=60) as http:
        model = {"type": "notebook", "content": nbformat.v4.new_notebook()}
        http.put("/api/contents/warm-up.ipynb", json=model).raise_for_status()
        http.get("/api/kernelspecs").raise_for_status()
        http.get("/api/cocalc-sync/notebooks/warm-up.ipynb").raise_for_status()


#: The probe's own process: ``GET /api/status`` every 50 ms (a held answer shows however rarely it
#: asks; more often only burns the CPU the server and the kernels share), one line per answer.
PROBE_SCRIPT = """
import sys, time, httpx
url, token = sys.argv[1], sys.argv[2]
with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30) as http:
    http.get(url)  # the connection is set up outside the measurement
    print("ready", flush=True)
    while True:
        start = time.perf_counter()
        try:
            status = http.get(url).status_code
            outcome = "ok" if status == 200 else f"status-{status}"
        except httpx.HTTPError as e:
            outcome = type(e).__name__
        print(f"{time.perf_counter() - start:.6f} {outcome}", flush=True)
        time.sleep(0.05)
"""


class StatusProbe:
    """Asks ``GET /api/status`` again and again and keeps the longest response time.

    From a process of its own, so that nothing of the test process (its event loop, its
    garbage collections) adds to the measured times.
    """

    def __init__(self, server: FaultyServer) -> None:
        self._args = (f"{server.process.url}/api/status", server.process.token)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._times: list[float] = []
        self._last_answer = time.monotonic()
        self.failures: list[str] = []

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PROBE_SCRIPT, *self._args, stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        assert (await self._process.stdout.readline()).strip() == b"ready"
        self._last_answer = time.monotonic()
        self._reader = asyncio.ensure_future(self._read(self._process.stdout))

    async def _read(self, lines: asyncio.StreamReader) -> None:
        async for line in lines:
            seconds, outcome = line.decode().split()
            self._times.append(float(seconds))
            self._last_answer = time.monotonic()
            if outcome != "ok":
                self.failures.append(outcome)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    @property
    def count(self) -> int:
        return len(self._times)

    @property
    def longest(self) -> float:
        return max(self._times, default=0.0)

    async def wait_for_requests(self, count: int) -> None:
        """Let the probe measure ``count`` more requests (the server's answers set the pace)."""
        target = self.count + count
        async with asyncio.timeout(DEADLINE_S):
            while self.count < target:
                silent = time.monotonic() - self._last_answer
                assert silent < STALLED_S, "the server stopped answering"
                await asyncio.sleep(0.02)

    def assert_responsive(self) -> None:
        assert not self.failures, self.failures
        assert self.count >= 20, f"only {self.count} probe requests"
        assert self.longest < STALLED_S, f"GET /api/status was held {self.longest:.1f} s"


@contextlib.asynccontextmanager
async def probing(server: FaultyServer) -> AsyncIterator[StatusProbe]:
    """Probe the server for the block's duration, then check it always answered."""
    probe = StatusProbe(server)
    try:
        await probe.start()
        await probe.wait_for_requests(5)
        yield probe
        await probe.wait_for_requests(20)  # and after the fault
    finally:
        await probe.stop()
    probe.assert_responsive()


# -- reading the notebook ---------------------------------------------------------------------


def cell(nb: LiveNotebook, cell_id: str) -> dict:
    return nb.get_one({"type": "cell", "id": cell_id}) or {}


def outputs(nb: LiveNotebook, cell_id: str) -> list[dict]:
    output = cell(nb, cell_id).get("output") or {}
    return [output[k] for k in sorted(output, key=int)]


def text_of(nb: LiveNotebook, cell_id: str) -> str:
    return "".join(o.get("text", "") for o in outputs(nb, cell_id) if "text" in o)


def error_of(nb: LiveNotebook, cell_id: str) -> dict | None:
    errors = [o for o in outputs(nb, cell_id) if o.get("output_type") == "error"]
    return errors[-1] if errors else None


def finished(cell_id: str):
    def check(nb: LiveNotebook) -> bool:
        record = cell(nb, cell_id)
        return record.get("state") == "idle" and record.get("end") is not None

    return check


def settings(nb: LiveNotebook) -> dict:
    return nb.get_one({"type": "settings", "id": "main"}) or {}


async def run_to_end(nb: LiveNotebook, cell_id: str) -> None:
    await nb.run([cell_id])
    await nb.wait_for(finished(cell_id), timeout=DEADLINE_S)


async def started(nb: LiveNotebook, cell_id: str) -> None:
    """Run the long cell and wait until its code is running in the kernel."""
    await nb.run([cell_id])
    await nb.wait_for(lambda n: "started" in text_of(n, cell_id), timeout=DEADLINE_S)


async def until(condition, what: str):
    """Poll an async ``condition`` (process states can only be polled)."""
    async with asyncio.timeout(DEADLINE_S):
        while not (value := await condition()):
            await asyncio.sleep(0.02)
    assert value, what
    return value


def assert_dead_kernel_reported(nb: LiveNotebook, cell_id: str) -> None:
    error = error_of(nb, cell_id)
    assert error is not None and error["ename"] in ("DeadKernelError", "KernelError"), error
    assert "died" in error["evalue"], error
    assert settings(nb).get("backend_state") == "failed"
    assert "died" in (settings(nb).get("kernel_error") or "")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- claim from the pool ------------------------------------------------------------------------


@NO_REFILL
@pytest.mark.parametrize("fault", ["stop", "stop-then-kill"])
async def test_a_frozen_pooled_kernel_is_replaced_after_the_claim(faulty, fault):
    nb = await faulty.open(["print('on a good kernel')"])
    await until(faulty.pool_ready, "a ready pooled kernel")
    (pooled,) = await faulty.pooled_pids()
    async with probing(faulty) as probe:
        faulty.signal(pooled, signal.SIGSTOP)
        # claims the frozen kernel: re-pointing it gets no answer, so it is restarted (in the
        # notebook's folder) before the runner's first request
        await nb.run(["cell-0"])
        await nb.wait_for(lambda n: cell(n, "cell-0").get("state") == "run")
        await probe.wait_for_requests(20)
        if fault == "stop-then-kill":
            faulty.signal(pooled, signal.SIGKILL)
        await nb.wait_for(finished("cell-0"), timeout=DEADLINE_S)
    assert text_of(nb, "cell-0") == "on a good kernel\n"
    assert await faulty.session_kernel_pid() != pooled

    async def discarded() -> bool:
        return gone(pooled)

    await until(discarded, "the frozen pooled kernel to be killed")
    pool = (await faulty.http.get("/api/cocalc-sync/kernels")).json()["pool"]
    assert pool["counters"]["repoint_failed"] == 1


@NO_REFILL
async def test_a_pooled_kernel_killed_while_booting_is_never_handed_out(faulty):
    # The pool starts filling with the server: its kernel is still booting now.
    booting = await until(faulty.pooled_pids, "the pool to start a kernel")
    nb = await faulty.open(["print('on a good kernel')"])
    async with probing(faulty):
        faulty.signal(booting[0], signal.SIGKILL)
        await run_to_end(nb, "cell-0")
    assert text_of(nb, "cell-0") == "on a good kernel\n"
    assert await faulty.session_kernel_pid() not in booting


# -- run ----------------------------------------------------------------------------------------


@ON_SHARED_SERVER
@pytest.mark.parametrize("fault", ["kill", "stop-then-kill"])
async def test_a_kernel_dying_mid_cell_ends_the_cell_and_the_server_keeps_answering(faulty, fault):
    nb = await faulty.open([LONG_CELL, "print('not run')", "print('next run works')"])
    await nb.run(["cell-0", "cell-1"])
    await nb.wait_for(lambda n: "started" in text_of(n, "cell-0"), timeout=DEADLINE_S)
    pid = await faulty.session_kernel_pid()
    async with probing(faulty) as probe:
        if fault == "stop-then-kill":
            faulty.signal(pid, signal.SIGSTOP)
            await probe.wait_for_requests(20)
        faulty.signal(pid, signal.SIGKILL)
        await nb.wait_for(finished("cell-0"), timeout=DEADLINE_S)
        assert_dead_kernel_reported(nb, "cell-0")
        assert not outputs(nb, "cell-1")  # the queue halted
        await run_to_end(nb, "cell-2")  # on the kernel jupyter_server restarted
    assert text_of(nb, "cell-2") == "next run works\n"
    assert settings(nb).get("backend_state") == "running"


# -- interrupt ----------------------------------------------------------------------------------


@ON_SHARED_SERVER
async def test_an_interrupt_sent_to_a_dying_kernel_answers_and_the_cell_ends(faulty):
    nb = await faulty.open([LONG_CELL])
    await started(nb, "cell-0")
    pid = await faulty.session_kernel_pid()
    async with probing(faulty):
        faulty.signal(pid, signal.SIGKILL)
        response = await faulty.post("interrupt")
        assert response.status_code == 200, response.text
        await nb.wait_for(finished("cell-0"), timeout=DEADLINE_S)
    assert_dead_kernel_reported(nb, "cell-0")


@ON_SHARED_SERVER
async def test_an_interrupt_sent_to_a_frozen_kernel_lands_once_it_continues(faulty):
    nb = await faulty.open([LONG_CELL])
    await started(nb, "cell-0")
    pid = await faulty.session_kernel_pid()
    async with probing(faulty) as probe:
        faulty.signal(pid, signal.SIGSTOP)
        response = await faulty.post("interrupt")
        assert response.status_code == 200, response.text
        await probe.wait_for_requests(20)
        assert cell(nb, "cell-0")["state"] == "busy"
        faulty.signal(pid, signal.SIGCONT)
        await nb.wait_for(finished("cell-0"), timeout=DEADLINE_S)
    assert error_of(nb, "cell-0")["ename"] == "KeyboardInterrupt"
    assert await faulty.session_kernel_pid() == pid


@NO_REFILL
async def test_a_pooled_kernel_interrupted_while_booting_survives(faulty):
    # Right after the server starts, the pool's kernel is still importing ipykernel: a SIGINT
    # then would kill it.
    await interrupt_while_booting(faulty)


@ON_SHARED_SERVER
async def test_a_kernel_interrupted_while_booting_survives(faulty):
    # The session's own kernel is still importing ipykernel when the cell asks for it. The
    # server's first kernel start imports what it needs: not measured.
    kernel = (await faulty.http.post("/api/kernels", json={"name": "python3"})).json()
    (await faulty.http.delete(f"/api/kernels/{kernel['id']}")).raise_for_status()
    await interrupt_while_booting(faulty)


async def interrupt_while_booting(faulty: FaultyServer) -> None:
    nb = await faulty.open(["print('ran')", "print('same kernel')"])
    async with probing(faulty):
        await nb.run(["cell-0"])
        # Interrupt again and again while the cell waits for its kernel (until it runs).
        while cell(nb, "cell-0").get("state") == "run":
            response = await faulty.post("interrupt")
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.02)
        await nb.wait_for(finished("cell-0"), timeout=DEADLINE_S)
        pid = await faulty.session_kernel_pid()
    error = error_of(nb, "cell-0")
    assert error is None or error["ename"] == "KeyboardInterrupt", error
    assert not settings(nb).get("kernel_error")
    await run_to_end(nb, "cell-1")
    assert text_of(nb, "cell-1") == "same kernel\n"
    assert await faulty.session_kernel_pid() == pid  # it survived: never restarted


# -- restart ------------------------------------------------------------------------------------


@ON_SHARED_SERVER
@pytest.mark.parametrize("fault", ["kill", "stop"])
async def test_restarting_a_dead_or_frozen_kernel_gives_a_working_one(faulty, fault):
    nb = await faulty.open(["x = 1", "print('after restart', 'x' in dir())"])
    await run_to_end(nb, "cell-0")
    pid = await faulty.session_kernel_pid()
    async with probing(faulty):
        faulty.signal(pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        # A frozen kernel ignores the polite shutdown; it is killed after the grace period.
        response = await faulty.post("restart")
        assert response.status_code == 200, response.text
        await run_to_end(nb, "cell-1")
    assert text_of(nb, "cell-1") == "after restart False\n", (
        cell(nb, "cell-1"),
        outputs(nb, "cell-1"),
    )
    assert gone(pid)


# -- the kernel_info handshake (the runner connecting to its kernel) ---------------------------


@ON_SHARED_SERVER
@pytest.mark.parametrize("fault", ["stop-then-kill", "stop-then-continue"])
async def test_a_kernel_frozen_during_the_handshake(faulty, fault):
    path = faulty.path
    nb = await faulty.open(["print('connected')", "print('next run works')"])
    body = {"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}}
    (await faulty.http.post("/api/sessions", json=body)).raise_for_status()
    pid = await faulty.session_kernel_pid()
    async with probing(faulty) as probe:
        faulty.signal(pid, signal.SIGSTOP)
        await nb.run(["cell-0"])  # the runner connects: its kernel_info gets no answer
        await nb.wait_for(lambda n: cell(n, "cell-0").get("state") == "run")
        await probe.wait_for_requests(20)
        assert cell(nb, "cell-0")["state"] == "run"
        if fault == "stop-then-kill":
            faulty.signal(pid, signal.SIGKILL)
        else:
            faulty.signal(pid, signal.SIGCONT)
        await nb.wait_for(finished("cell-0"), timeout=DEADLINE_S)
    if fault == "stop-then-kill":
        assert_dead_kernel_reported(nb, "cell-0")
        await run_to_end(nb, "cell-1")  # on the kernel jupyter_server restarted
        assert text_of(nb, "cell-1") == "next run works\n"
    else:
        assert text_of(nb, "cell-0") == "connected\n"


# -- change kernel -----------------------------------------------------------------------------


@NO_REFILL
@pytest.mark.parametrize("fault", ["kill", "stop"])
async def test_changing_away_from_a_dead_or_frozen_kernel(faulty, fault):
    nb = await faulty.open(["x = 1", "print('new kernel', 'x' in dir())"])
    await run_to_end(nb, "cell-0")
    old = await faulty.session_kernel_pid()
    async with probing(faulty):
        faulty.signal(old, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        response = await faulty.post("kernel", {"name": "python3"})
        assert response.status_code == 200, response.text
        await run_to_end(nb, "cell-1")
    assert text_of(nb, "cell-1") == "new kernel False\n"
    assert await faulty.session_kernel_pid() != old

    async def old_gone() -> bool:
        return gone(old)

    await until(old_gone, "the old kernel to be shut down")
