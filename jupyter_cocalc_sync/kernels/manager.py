"""``PoolingKernelManager`` under the name configurations written before ``pool/`` use
(``c.ServerApp.kernel_manager_class = "jupyter_cocalc_sync.kernels.manager.…"``)."""

from ..pool.manager import PoolingKernelManager

__all__ = ["PoolingKernelManager"]
