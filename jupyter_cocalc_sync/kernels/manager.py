"""Placeholder: the pool-aware kernel manager (being written)."""

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager


class PoolingKernelManager(AsyncMappingKernelManager):
    """A kernel manager that hands out pre-spawned kernels (not yet: plain manager)."""
