"""``KernelChannelsConnection`` under the name configurations written before ``pool/`` use
(``c.ServerApp.kernel_websocket_connection_class = "jupyter_cocalc_sync.kernels.websocket.…"``).
"""

from ..pool.websocket import KernelChannelsConnection

__all__ = ["KernelChannelsConnection"]
