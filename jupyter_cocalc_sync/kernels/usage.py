"""How much memory and CPU a kernel uses: its process and every process it started.

Only local kernels have a process here: a kernel behind a gateway (``--gateway-url``) has no
local pid, and its usage is then unknown (``None``), not an error. Sampling reads ``/proc``
through psutil: blocking system calls, so callers run ``sample`` in a thread. The tree is found
from the kernel down (Linux lists each thread's children in ``/proc``): psutil's ``children``
reads every process of the machine to find the few that are the kernel's, a few milliseconds
of the server's CPU per sample on a machine running a few hundred processes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from jupyter_client.manager import KernelManager


@dataclass(frozen=True)
class KernelUsage:
    #: resident memory of the process tree, in bytes
    memory: int
    #: CPU of the process tree since the previous sample, in percent of one core (a kernel
    #: busy on two cores shows 200)
    cpu: float
    #: when it was sampled, ms since the epoch
    time: float

    def to_json(self) -> dict[str, Any]:
        return {"memory": self.memory, "cpu": round(self.cpu, 1), "time": self.time}


def local_pid(km: KernelManager) -> int | None:
    """The pid of the kernel of the kernel manager ``km``, if it runs as a local process
    (None for a gateway's kernel, which has no local provisioner, or a stopped one)."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


class ProcessTreeSampler:
    """Samples one process tree; keeps its psutil handles between samples, since CPU percent
    is measured from one sample to the next (a process's first sample counts 0)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._processes: dict[int, psutil.Process] = {}

    def sample(self) -> KernelUsage | None:
        """The tree's usage now; None once the root process is gone. Blocking."""
        try:
            root = self._process(self.pid)
            tree = [root, *self._descendants(root)]
        except psutil.Error:
            return None
        memory, cpu = 0, 0.0
        alive: dict[int, psutil.Process] = {}
        for listed in tree:
            process = self._process(listed.pid, listed)
            try:
                with process.oneshot():
                    memory += process.memory_info().rss
                    cpu += process.cpu_percent(interval=None)
            except psutil.Error:
                continue  # exited meanwhile
            alive[process.pid] = process
        self._processes = alive
        return KernelUsage(memory=memory, cpu=cpu, time=time.time() * 1000)

    def _descendants(self, root: psutil.Process) -> list[psutil.Process]:
        if not CHILDREN_LISTED:
            return root.children(recursive=True)
        found: list[psutil.Process] = []
        parents = listed_children(root.pid)  # (raises once the root is gone)
        while parents:
            pid = parents.pop()
            with contextlib.suppress(psutil.NoSuchProcess):  # (exited meanwhile)
                found.append(psutil.Process(pid))
                parents.extend(listed_children(pid))
        return found

    def _process(self, pid: int, listed: psutil.Process | None = None) -> psutil.Process:
        known = self._processes.get(pid)
        # a pid reused by another process is another process: psutil compares creation times
        if known is not None and (listed is None or known == listed):
            return known
        return listed if listed is not None else psutil.Process(pid)


#: whether this system lists each thread's children (``/proc/<pid>/task/<tid>/children``, Linux
#: built with ``CONFIG_PROC_CHILDREN``, as distributions' kernels are)
CHILDREN_LISTED = os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children")


def listed_children(pid: int) -> list[int]:
    """The pids of the processes that ``pid``'s threads started; ``psutil.NoSuchProcess``
    once it is gone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(pid) from None
    children: list[int] = []
    for tid in threads:
        path = f"/proc/{pid}/task/{tid}/children"
        # (a thread that ended meanwhile has no file)
        with contextlib.suppress(FileNotFoundError, ProcessLookupError), open(path) as listed:
            children.extend(int(child) for child in listed.read().split())
    return children
