"""Kernel usage sampling (``kernels.usage``), without a kernel."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import psutil
import pytest
from jupyter_server.gateway.managers import GatewayKernelManager

from jupyter_cocalc_sync.kernels.usage import CHILDREN_LISTED, ProcessTreeSampler, local_pid


async def test_usage_is_absent_for_a_kernel_without_a_local_process():
    """A gateway's kernel (``--gateway-url``) has no local process: no usage, no error."""
    assert local_pid(GatewayKernelManager()) is None


def test_a_kernels_tree_is_sampled_without_reading_every_process_of_the_machine(monkeypatch):
    """The kernel's child and grandchild count; the machine's other processes are not read
    (psutil's ``children`` reads every one of them: milliseconds of the server's CPU per
    sample on a machine running a few hundred)."""
    if not CHILDREN_LISTED:
        pytest.skip("this system does not list children in /proc")
    grandchild = "import time; time.sleep(120)"
    child = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}]); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    kernel = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE)
    try:
        assert kernel.stdout is not None
        grandchild_pid = int(kernel.stdout.readline())
        monkeypatch.setattr(psutil, "_ppid_map", lambda: pytest.fail("read every process"))
        sampler = ProcessTreeSampler(kernel.pid)
        usage = sampler.sample()
        assert usage is not None and usage.memory > 0
        assert set(sampler._processes) == {kernel.pid, grandchild_pid}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild_pid, signal.SIGKILL)
        kernel.kill()
        kernel.wait()
        if kernel.stdout is not None:
            kernel.stdout.close()
    assert sampler.sample() is None  # the kernel is gone
