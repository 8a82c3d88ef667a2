"""A pooled kernel booting while a user's kernel start is under way runs at low CPU priority.

A refill that boots next to a user's open takes half of a two-core machine's CPU from it. So
while a start is under way, the pool lowers the priority of its kernels still booting, and
restores it once the start is over (or a start takes the kernel over).

On Linux, ``nice`` alone does nothing here: with the scheduler's autogroups (the default on
desktop and most server kernels) each session is its own group, sharing CPU fairly with the
others whatever the nice values of their processes, and jupyter_client starts every kernel
in a new session. What does weigh is the group's own nice value, ``/proc/<pid>/autogroup``,
which any process of the same user may lower and restore (restoring more often than every
100 ms needs CAP_SYS_ADMIN, hence the retry). Where autogroups are off (or the kernel sits in
a cgroup of its own, where they are ignored), the threads' nice values weigh; the server lowers
those only where it may raise them again (root, or an ``RLIMIT_NICE`` that allows nice 0):
otherwise the kernel would run at low priority for good.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path

#: the nice value of a booting pooled kernel while a start is under way: a CPU weight of
#: ~1/70 of a normal process's
BOOT_NICE = 19
#: attempts, 100 ms apart, to restore an autogroup's nice value (the kernel limits how often
#: unprivileged processes may change one)
RESTORE_ATTEMPTS = 20

log = logging.getLogger(__name__)


def _autogroups_enabled() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:  # not Linux, or no autogroup support in the kernel
        return False


def _may_restore_thread_nice() -> bool:
    if not hasattr(os, "setpriority"):
        return False
    if os.geteuid() == 0:
        return True
    soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    return soft == resource.RLIM_INFINITY or soft >= 20  # 20 - soft is the lowest nice allowed


@dataclass
class Lowered:
    """What was lowered for one kernel process, to restore at the claim."""

    pid: int
    autogroup: bool
    threads: bool


def lower(pid: int) -> Lowered | None:
    """Lower a just-launched kernel's CPU priority; None if nothing could be lowered."""
    autogroup = _autogroups_enabled() and _write_autogroup_nice(pid, BOOT_NICE)
    threads = _may_restore_thread_nice() and _set_thread_nice(pid, BOOT_NICE)
    if not (autogroup or threads):
        return None
    return Lowered(pid, autogroup, threads)


async def restore(lowered: Lowered) -> None:
    """Give a claimed kernel the normal priority again (a gone process is left alone)."""
    if lowered.threads:
        _set_thread_nice(lowered.pid, 0)
    if not lowered.autogroup:
        return
    for attempt in range(RESTORE_ATTEMPTS):
        try:
            _autogroup_path(lowered.pid).write_text("0")
            return
        except OSError as e:
            if e.errno in (errno.ESRCH, errno.ENOENT):  # the process is gone
                return
            if e.errno != errno.EAGAIN or attempt == RESTORE_ATTEMPTS - 1:
                log.warning("Kernel process %d keeps its low CPU priority: %s", lowered.pid, e)
                return
        await asyncio.sleep(0.1)  # the kernel's rate limit on autogroup changes: 100 ms


def _autogroup_path(pid: int) -> Path:
    return Path(f"/proc/{pid}/autogroup")


def _write_autogroup_nice(pid: int, nice: int) -> bool:
    try:
        _autogroup_path(pid).write_text(str(nice))
    except OSError as e:  # gone already, rate-limited, or not permitted: boots at normal
        log.debug("Kernel process %d: autogroup nice not set: %s", pid, e)
        return False
    return True


def _set_thread_nice(pid: int, nice: int) -> bool:
    """Set the nice value of every thread of ``pid`` (Linux's nice is per thread)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:  # not Linux: the process's nice value
        tids = [pid]
    done = False
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
            done = True
        except OSError as e:  # the thread ended meanwhile, or not permitted
            log.debug("Kernel process %d thread %d: nice not set: %s", pid, tid, e)
    return done
