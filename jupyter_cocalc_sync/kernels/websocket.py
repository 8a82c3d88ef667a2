"""The kernel websocket of jupyter_server, with TCP_NODELAY.

jupyter_server never sets TCP_NODELAY on ``/api/kernels/<id>/channels``, so Nagle's algorithm
holds back small frames: a warm ``1+1`` from JupyterLab takes ~48 ms instead of ~5 ms
(RESEARCH.md). Completions, inspections and widget messages from the browser use this socket
too, so the package's jupyter-config sets this class as
``ServerApp.kernel_websocket_connection_class``.
"""

from __future__ import annotations

import asyncio

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class NoDelayChannelsConnection(ZMQChannelsWebsocketConnection):
    """``ZMQChannelsWebsocketConnection`` whose socket sends small frames at once."""

    def connect(self) -> asyncio.Future[None] | None:
        self.websocket_handler.set_nodelay(True)
        return super().connect()
