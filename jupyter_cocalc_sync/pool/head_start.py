"""What a pooled kernel hands to its first websocket: the work already done while it waited.

jupyter_server's kernel websocket spends two kernel round trips before it passes a message on:
``prepare`` asks for ``kernel_info`` (for the protocol version), and ``connect`` "nudges" the
kernel with ``kernel_info`` requests until the websocket's new iopub subscription has delivered
a message (a ZMQ SUB socket misses whatever is published before its subscription has reached
the kernel, so without that proof the first outputs of the first cell could be lost). On this
machine the two cost 15–20 ms, more than the cell itself.

A pooled kernel has done both already: the pool asked for ``kernel_info`` when warming it up,
and it keeps an iopub subscription open from then on, which the warm-up cell and the
re-pointing request prove (both publish ``status`` messages). The first websocket to the
claimed kernel takes these over (``pool/websocket.py``) instead of repeating them; any later
websocket, or one that finds the proof missing, does the stock handshake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zmq.eventloop.zmqstream import ZMQStream

if TYPE_CHECKING:
    from jupyter_client.ioloop.manager import AsyncIOLoopKernelManager
    from jupyter_client.manager import KernelManager

#: how long a claimed kernel keeps its head start for a websocket that has not come yet
HEAD_START_TTL_S = 30.0


def kernel_pid(km: KernelManager) -> int | None:
    """The kernel's process id (a restart makes a new process, and voids a head start)."""
    return getattr(km.provisioner, "pid", None)


@dataclass(eq=False)
class HeadStart:
    """A pooled kernel's ``kernel_info`` and its iopub subscription, for one websocket."""

    kernel_info: dict[str, Any]
    #: the kernel process the subscription was made to
    pid: int | None
    iopub: ZMQStream | None = None
    #: an iopub message has come through the subscription since it was opened (the messages
    #: before the hand-over are dropped: they answer the pool's own requests)
    proven: bool = False

    @classmethod
    def subscribe(cls, km: AsyncIOLoopKernelManager, kernel_info: dict[str, Any]) -> HeadStart:
        """Open the iopub subscription now, so the kernel's next messages prove it."""
        head_start = cls(kernel_info, kernel_pid(km))
        stream = km.connect_iopub()
        if isinstance(stream, ZMQStream):
            head_start.iopub = stream
            stream.on_recv(head_start._received)
        else:  # a kernel manager class whose channels are not tornado streams: no hand-over
            stream.close(linger=0)
        return head_start

    def _received(self, _message: list[bytes]) -> None:
        self.proven = True

    def take_iopub(self, km: KernelManager) -> ZMQStream | None:
        """The proven subscription, once (None if unproven, closed or made to an older process).

        From here on its messages stay queued until the taker reads them.
        """
        stream, self.iopub = self.iopub, None
        if stream is None:
            return None
        if not self.proven or stream.closed() or kernel_pid(km) != self.pid:
            stream.close(linger=0)
            return None
        stream.stop_on_recv()
        return stream

    def close(self) -> None:
        """Close the subscription if nobody took it."""
        stream, self.iopub = self.iopub, None
        if stream is not None and not stream.closed():
            stream.close(linger=0)
