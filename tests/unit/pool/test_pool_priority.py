"""Pooled kernels boot at low CPU priority and get the normal one back (``pool.priority``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_cocalc_sync.pool import priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling")


def autogroup_nice(pid: int) -> int:
    # "/autogroup-1234 nice 10"
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def thread_nices(pid: int) -> set[int]:
    return {os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir(f"/proc/{pid}/task")}


@pytest.fixture
def process() -> Iterator[int]:
    """A process in a session of its own, with a second thread, as jupyter_client starts a
    kernel."""
    code = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n"
    code += "print(flush=True)\ntime.sleep(60)\n"
    child = subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    child.stdout.readline()  # its second thread runs
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


async def test_a_pooled_kernel_is_lowered_then_restored(process):
    lowered = priority.lower(process)
    assert lowered is not None
    if lowered.autogroup:
        assert autogroup_nice(process) == priority.BOOT_NICE
    if lowered.threads:
        assert thread_nices(process) == {priority.BOOT_NICE}
    await priority.restore(lowered)
    if lowered.autogroup:
        assert autogroup_nice(process) == 0
    assert thread_nices(process) == {0}


async def test_restoring_a_gone_process_is_quiet(process):
    lowered = priority.lower(process)
    assert lowered is not None
    os.kill(process, 9)
    os.waitpid(process, 0)
    await priority.restore(lowered)  # no error: a claimed kernel that died is restarted anyway
