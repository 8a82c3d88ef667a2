"""Classes a benchmark's *server* process imports (``BenchServer(..., pythonpath=[BENCH_DIR])``).

Only jupyter_server may be imported here: the stock server runs this from ``bench/.venv-stock``.
"""

from __future__ import annotations

import asyncio

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class NoDelayOnRequest(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket, unchanged unless the client connects with
    ``?nodelay=1``: then the server's end of the socket gets TCP_NODELAY (what jupyter_server
    never sets), so one stock server measures both with and without Nagle's algorithm."""

    # the signature of ZMQChannelsWebsocketConnection.connect, which differs from its base's
    def connect(self) -> asyncio.Future[None] | None:  # type: ignore[override]
        if self.websocket_handler.get_argument("nodelay", "") == "1":
            self.websocket_handler.set_nodelay(True)
        return super().connect()


#: the configuration that installs it
NODELAY_ON_REQUEST = {
    "ServerApp": {"kernel_websocket_connection_class": f"{__name__}.NoDelayOnRequest"}
}
