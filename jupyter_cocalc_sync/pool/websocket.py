"""The kernel websocket of jupyter_server, with TCP_NODELAY and a pooled kernel's head start.

jupyter_server never sets TCP_NODELAY on ``/api/kernels/<id>/channels``, so Nagle's algorithm
holds back small frames: a warm ``1+1`` from JupyterLab takes ~48 ms instead of ~5 ms.
Completions, inspections and widget messages from the browser use this socket too, so the
extension sets this class as ``ServerApp.kernel_websocket_connection_class`` (unless another
is configured).

The first websocket to a kernel just taken from the pool skips jupyter_server's two handshake
round trips, using what the pool already did (``head_start``): the kernel's ``kernel_info``
instead of asking again, and the pool's proven iopub subscription instead of a new one proven
by "nudging". Every other websocket, and one whose head start has lapsed, connects as stock.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from .claims import Claims
from .head_start import HeadStart


class KernelChannelsConnection(ZMQChannelsWebsocketConnection):
    """``ZMQChannelsWebsocketConnection`` whose socket sends small frames at once, and whose
    first connection to a pooled kernel starts without the kernel_info round trips."""

    _iopub_proven: bool = False

    def _claims(self) -> Claims | None:
        claims = getattr(self.multi_kernel_manager, "claims", None)
        return claims if isinstance(claims, Claims) else None  # another kernel manager class

    def _pooled_head_start(self, *, take: bool) -> HeadStart | None:
        claims = self._claims()
        if claims is None:
            return None
        return claims.take_head_start(self.kernel_id) if take else claims.head_start(self.kernel_id)

    def request_kernel_info(self) -> ConcurrentFuture[Any]:  # (typed as the stock class has it)
        head_start = self._pooled_head_start(take=False)
        if head_start is None:
            return super().request_kernel_info()  # type: ignore[no-any-return,no-untyped-call]  # untyped upstream
        # what the stock reply handler does with the reply the pool already has
        self._finish_kernel_info(head_start.kernel_info)  # type: ignore[no-untyped-call]  # untyped upstream
        return self._kernel_info_future

    def create_stream(self) -> None:
        super().create_stream()  # type: ignore[no-untyped-call]  # untyped upstream
        head_start = self._pooled_head_start(take=True)
        iopub = head_start.take_iopub(self.kernel_manager) if head_start is not None else None
        if iopub is None:
            return
        self.channels["iopub"].close(linger=0)
        iopub.channel = "iopub"  # type: ignore[attr-defined]  # jupyter_server's stream label
        self.channels["iopub"] = iopub
        self._iopub_proven = True
        claims = self._claims()
        if claims is not None:
            claims.head_start_used()

    def nudge(self) -> asyncio.Future[None]:
        if not self._iopub_proven:
            return super().nudge()
        # The subscription has delivered messages already, and the kernel answered the pool a
        # moment ago: nothing left for the nudge to prove.
        self._iopub_proven = False
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def connect(self) -> asyncio.Future[None] | None:  # type: ignore[override]  # as the stock class
        self.websocket_handler.set_nodelay(True)
        return super().connect()


#: the name this class had before it did more than TCP_NODELAY (configurations may name it)
NoDelayChannelsConnection = KernelChannelsConnection
