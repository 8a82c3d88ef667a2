"""A kernel waiting in the pool, and the requests the pool sends it.

Requests go out without blocking the event loop, and a kernel whose process exits is noticed at
once (its pidfd), whatever it was doing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..kernels.channels import settle, stop_started
from ..kernels.process import wait_for_exit
from .head_start import HeadStart
from .settings import PoolKey

if TYPE_CHECKING:
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

T = TypeVar("T")

#: how long a pooled kernel may take to answer its first kernel_info_request
WARM_UP_TIMEOUT_S = 60.0
#: the warm-up cell (pooled kernels are ipykernel's, so ``get_ipython`` is there)
WARM_UP_CODE = "get_ipython().display_formatter.format(0)"


class PooledKernelError(RuntimeError):
    """A pooled kernel died or did not answer; it is discarded and replaced."""


@dataclass(eq=False)
class PooledKernel:
    """A started, warmed-up kernel waiting to be claimed."""

    kernel_id: str
    km: ServerKernelManager
    client: AsyncKernelClient
    key: PoolKey
    #: the manager's ``autorestart`` setting, off while pooled (a dead one is replaced)
    autorestart: bool = True
    started_at: float = field(default_factory=time.monotonic)
    #: its kernel_info and iopub subscription, for the first websocket after the claim
    head_start: HeadStart | None = None
    #: once claimed: whether the kernel ran the re-pointing code (False: restart it)
    repointed: asyncio.Future[bool] | None = None

    def release(self) -> None:
        """Close the pool's connections to the kernel (the kernel itself lives on)."""
        stop_started(self.client, ("shell",))
        if self.head_start is not None:
            self.head_start.close()


async def warm_up(entry: PooledKernel) -> None:
    """Wait for the kernel to answer, then run one silent cell.

    The first execution in a fresh IPython pays for lazy imports and compiling its
    machinery, and the first displayed result for setting up the display formatters
    (~2 ms each, measured); the warm-up cell does both, so neither falls on the claim or
    the notebook's first cell. It formats a value without displaying it: no output, no
    ``_`` or ``Out`` entry, no execution count.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WARM_UP_TIMEOUT_S
    while True:
        try:
            info = await request_reply(entry, "kernel_info", 1.0)
            break
        except TimeoutError:
            # ipykernel may drop a request sent before its sockets are bound
            if loop.time() > deadline:
                raise
    # subscribed before the warm-up cell, whose status messages then prove it
    entry.head_start = HeadStart.subscribe(entry.km, info["content"])
    await request_reply(
        entry, "execute", WARM_UP_TIMEOUT_S, code=WARM_UP_CODE, silent=True, store_history=False
    )


async def request_reply(
    entry: PooledKernel, method: str, timeout: float, **content: Any
) -> dict[str, Any]:
    """Send a shell request and wait for its reply.

    ``TimeoutError`` past ``timeout`` seconds; ``PooledKernelError`` as soon as the process
    exits.
    """
    msg_id = await send_request(entry, method, timeout, **content)
    return await reply_to(entry, msg_id, method, timeout)


async def send_request(entry: PooledKernel, method: str, timeout: float, **content: Any) -> str:
    """Hand a shell request to the kernel's socket; its msg_id (errors as ``request_reply``)."""
    session = entry.client.session
    if method == "execute":
        defaults = {"silent": False, "store_history": True, "user_expressions": {}}
        content = {**defaults, **content, "allow_stdin": False, "stop_on_error": True}
    msg = session.msg(f"{method}_request", content)
    exited = asyncio.ensure_future(wait_for_exit(entry.km))
    try:
        async with asyncio.timeout(timeout):
            sending = entry.client.shell_channel.socket.send_multipart(session.serialize(msg))
            await _unless_exited(settle(sending, timeout), exited)
    except TimeoutError:
        raise TimeoutError(f"{method}_request not taken within {timeout:g} s") from None
    finally:
        exited.cancel()
    msg_id: str = msg["header"]["msg_id"]
    return msg_id


async def reply_to(entry: PooledKernel, msg_id: str, method: str, timeout: float) -> dict[str, Any]:
    """The reply to ``msg_id`` (errors as ``request_reply``)."""
    exited = asyncio.ensure_future(wait_for_exit(entry.km))
    try:
        async with asyncio.timeout(timeout):
            while True:
                reply = await _unless_exited(entry.client.get_shell_msg(), exited)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return reply
    except TimeoutError:
        raise TimeoutError(f"no {method}_reply within {timeout:g} s") from None
    finally:
        exited.cancel()


async def _unless_exited(work: Awaitable[T], exited: asyncio.Future[Any]) -> T:
    """The result of ``work``, or ``PooledKernelError`` as soon as ``exited`` is done."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.done():
        task.cancel()
        raise PooledKernelError("the kernel process died")
    return task.result()
