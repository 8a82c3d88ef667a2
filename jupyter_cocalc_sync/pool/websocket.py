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

That first websocket also opens without waiting for the kernel to settle (``claims``: to have
run its re-pointing code, or been restarted), which jupyter_server's waits for: the kernel runs
the re-pointing while the handshake is answered and the browser's first request travels. What
the browser sends meanwhile is held here, in order, and passed on once the kernel has settled:
nothing of the notebook's reaches a kernel that has not been re-pointed. If settling restarted
the kernel, the new process's iopub subscription is proven first (the stock "nudge").
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from .claims import Claims
from .head_start import HeadStart, kernel_pid


class KernelChannelsConnection(ZMQChannelsWebsocketConnection):
    """``ZMQChannelsWebsocketConnection`` whose socket sends small frames at once, and whose
    first connection to a pooled kernel starts without the kernel_info round trips."""

    _iopub_proven: bool = False
    #: the kernel process this websocket's iopub subscription was made to, while holding
    _held_pid: int | None = None
    #: the browser's messages held until the claimed kernel has settled (None: not holding)
    _held: list[Any] | None = None

    def _claims(self) -> Claims | None:
        claims = getattr(self.multi_kernel_manager, "claims", None)
        return claims if isinstance(claims, Claims) else None  # another kernel manager class

    def _pooled_head_start(self, *, take: bool) -> HeadStart | None:
        claims = self._claims()
        if claims is None:
            return None
        return claims.take_head_start(self.kernel_id) if take else claims.head_start(self.kernel_id)

    async def prepare(self) -> None:
        claims = self._claims()
        settling = claims.when_settled(self.kernel_id) if claims is not None else None
        if settling is None or self._pooled_head_start(take=False) is None:
            await super().prepare()  # type: ignore[no-untyped-call]  # untyped upstream
            return
        # The stock prepare but for its wait for the kernel's ``ready`` (here: its settling):
        # no kernel_info round trip either (the head start's), so nothing else to wait for.
        await self._register_session()  # type: ignore[no-untyped-call]  # untyped upstream
        self.session.key = self.kernel_manager.session.key
        await asyncio.wrap_future(self.request_kernel_info())
        self._held = []
        self._held_pid = kernel_pid(self.kernel_manager)
        settling.add_done_callback(self._settled)

    def handle_incoming_message(self, incoming_msg: str) -> None:
        if self._held is not None:
            self._held.append(incoming_msg)
            return
        super().handle_incoming_message(incoming_msg)

    def _settled(self, _settling: asyncio.Future[None]) -> None:
        if self._held is None:  # the websocket closed meanwhile
            return
        iopub = self.channels.get("iopub")
        if iopub is None or kernel_pid(self.kernel_manager) == self._held_pid:
            self._release_held()
            return
        # Restarted: prove the subscription to the new process as stock does, then let go.
        # (The nudge takes the iopub stream's callback over and stops it when done.)
        proving = super().nudge()

        def proven(_: asyncio.Future[None]) -> None:
            if not iopub.closed():
                iopub.on_recv_stream(self.handle_outgoing_message)
            self._release_held()

        proving.add_done_callback(proven)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        for message in held or ():
            super().handle_incoming_message(message)

    def disconnect(self) -> None:  # type: ignore[override]  # as the stock class
        self._held = None  # nobody is left to see what they would answer
        super().disconnect()  # type: ignore[no-untyped-call]  # untyped upstream

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
