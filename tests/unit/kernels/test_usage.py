"""Kernel usage sampling (``kernels.usage``), without a kernel."""

from __future__ import annotations

from jupyter_server.gateway.managers import GatewayKernelManager

from jupyter_cocalc_sync.kernels.usage import local_pid


async def test_usage_is_absent_for_a_kernel_without_a_local_process():
    """A gateway's kernel (``--gateway-url``) has no local process: no usage, no error."""
    assert local_pid(GatewayKernelManager()) is None
