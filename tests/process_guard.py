"""Processes a test left running: a test fails naming every one.

A process belongs to the test run when it descends from the pytest process, or when its
command line or environment points into the run's temporary directory (a hub-spawned server
or a kernel whose parent exited is reparented to init, but its environment still names the
isolated Jupyter folders the test made there).

After a test, a process started during it is the test's if the test itself started it (the
pytest process, or another process started during the test, is its parent) or if it is an
orphan of the run; a process a longer-lived server started (a session-scoped server's kernel)
belongs to that server, checked when the server's fixture ends: at the end of the session,
every process of the run must be gone.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import fork_server
import psutil

#: how long a process may take to exit after the test stopped it (a kernel told to shut down
#: exits within about a second; seconds mean it was never told)
EXIT_GRACE_S = 10.0

#: processes of the run that outlive tests on purpose: (why, a part of the command line)
LONG_LIVED = [
    (
        "multiprocessing's resource tracker: started by the first process pool (the replay "
        "pool of an in-process server) and kept by the interpreter until it exits",
        "from multiprocessing.resource_tracker import main",
    ),
]

_Key = tuple[int, float]


@dataclass(frozen=True)
class Snapshot:
    """The processes alive at one moment, keyed by (pid, start time) since pids are reused."""

    keys: frozenset[_Key]
    taken_at: float
    #: this process's environment then (what the processes it starts inherit)
    environ: dict[str, str]


def _key(process: psutil.Process) -> _Key | None:
    try:
        return process.pid, process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def snapshot() -> Snapshot:
    keys = {k for p in psutil.process_iter() if (k := _key(p)) is not None}
    return Snapshot(frozenset(keys), time.time(), dict(os.environ))


def _points_into(
    process: psutil.Process, folder: str, inherited: dict[str, str] | None = None
) -> bool:
    """Whether ``process``'s command line or environment names a path under ``folder``.

    Variables with the value they have in ``inherited`` (the test process's environment, which
    points Jupyter's folders into the run's) say nothing: a database server a fixture starts
    inherits them too. A hub-spawned server or a kernel is given folders of its own.
    """
    inherited = inherited or {}
    try:
        environ = process.environ()
        texts = [
            *process.cmdline(),
            *(value for key, value in environ.items() if inherited.get(key) != value),
        ]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return any(folder in text for text in texts)


#: processes a session- or module-scoped fixture owns although a test started them (a
#: session's server that a test restarts): checked at the end of the session, with their
#: descendants
_SESSION_OWNED: set[int] = set()


def owned_by_session(pid: int) -> None:
    """``pid`` belongs to a longer-lived fixture than the test starting it."""
    _SESSION_OWNED.add(pid)


def _owned_by_session(process: psutil.Process) -> bool:
    try:
        lineage = [process, *process.parents()]
    except psutil.NoSuchProcess:
        return False
    return any(p.pid in _SESSION_OWNED for p in lineage)


def _long_lived(process: psutil.Process) -> bool:
    from jupyter_cocalc_sync.store.replay import ReplayPool

    if process.pid == fork_server.fork_server_pid():  # stopped at the end of the session
        return True

    # the replay pool every change log of a process shares: started on the first replay and
    # closed when the process exits (its worker also leaves when its parent does)
    shared = ReplayPool._shared
    if shared is not None and process.pid in shared.worker_pids():
        return True
    try:
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return True  # gone already
    return any(part in command for _, part in LONG_LIVED)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(process: psutil.Process) -> str:
    try:
        command = " ".join(process.cmdline())[:300]
        return f"pid {process.pid} (parent {process.ppid()}): {command}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return f"pid {process.pid} (exited)"


class ProcessGuard:
    """Finds the processes of the run (this pytest process and ``temp_root``) left behind."""

    def __init__(self, temp_root: Path) -> None:
        self.me = psutil.Process(os.getpid())
        # with the separator: pytest-1 must not match pytest-12
        self.temp_root = f"{temp_root.resolve()}{os.sep}"

    def _descendants(self) -> list[psutil.Process]:
        return self.me.children(recursive=True)

    def left_by_test(self, before: Snapshot, at_call: Snapshot | None) -> list[psutil.Process]:
        """The running processes started since ``before`` (the test's setup) that the test
        left behind. An orphan already running when the test's call began (``at_call``) may
        be a daemon a session-scoped fixture started while the test was set up (a database
        server): the end of the session checks those."""
        descendants = {p.pid: p for p in self._descendants()}
        started = [
            p
            for p in psutil.process_iter()
            if (k := _key(p)) is not None and k not in before.keys and k[1] >= before.taken_at - 1
        ]
        started_pids = {p.pid for p in started}
        left = []
        for process in started:
            if process.pid in descendants:
                if self._started_by_test(process, started_pids):
                    left.append(process)
            elif _points_into(process, self.temp_root, (at_call or before).environ) and (
                at_call is None or _key(process) not in at_call.keys
            ):  # an orphan of this run
                left.append(process)
        return [p for p in left if _running(p) and not _long_lived(p) and not _owned_by_session(p)]

    def _started_by_test(self, process: psutil.Process, started_pids: set[int]) -> bool:
        """Whether every process between ``process`` and pytest was started during the test
        (a kernel of a server that a session- or module-scoped fixture started is that
        server's, checked when its fixture ends)."""
        try:
            for ancestor in process.parents():
                # a server the fork server forked is a process this one started
                if ancestor.pid in (self.me.pid, fork_server.fork_server_pid()):
                    return True
                if ancestor.pid not in started_pids:
                    return False
        except psutil.NoSuchProcess:
            return False
        return False

    def left_by_run(self) -> list[psutil.Process]:
        """Every running process of the run (at the end of the session)."""
        mine = {p.pid: p for p in self._descendants()}
        for process in psutil.process_iter():
            if process.pid not in mine and _points_into(process, self.temp_root):
                mine[process.pid] = process
        mine.pop(self.me.pid, None)
        return [p for p in mine.values() if _running(p) and not _long_lived(p)]

    @staticmethod
    def stop_lingering(processes: list[psutil.Process]) -> list[str]:
        """Those of ``processes`` that do not exit within the grace, described; they are
        killed then, so that they cannot disturb the tests after."""
        _, alive = psutil.wait_procs(processes, timeout=EXIT_GRACE_S)
        alive = [p for p in alive if _running(p)]
        described = [_describe(p) for p in alive]
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=EXIT_GRACE_S)
        return described
