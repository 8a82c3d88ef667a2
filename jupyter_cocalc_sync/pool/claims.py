"""Kernels just taken from the pool, until they are wholly the notebook's.

Two things outlive a claim, by a few milliseconds to 30 s:

* **Its re-pointing.** The pool sends the re-pointing code at the claim and does not wait for
  it: the kernel runs it while the session's answer travels to the browser. The kernel's
  ``ready`` future — what jupyter_server's websocket and this extension's runner await before
  their first request — is done only once the kernel has run it, or, if it did not (it froze,
  died, or the code failed), once it has been restarted: its launch options are the
  notebook's already, so it comes back in the notebook's folder. ``ready`` is jupyter_client's
  ``_ready``, which jupyter_client itself replaces at every start and restart. jupyter_client
  expects ``ready`` to be done outside its own starts: shutting down reads its outcome
  without waiting, interrupting refuses a pending kernel. So stopping and restarting a
  claimed kernel wait until it is settled (``until_settled``), and an interrupt before then
  is ignored: nothing of the notebook's runs yet, and a SIGINT would only break the
  re-pointing.
* **Its head start** (``head_start.py``), for the first websocket.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tornado.web import HTTPError

from ..errors_seen import count_error
from .filling import POOL_ERRORS
from .head_start import HEAD_START_TTL_S, HeadStart

if TYPE_CHECKING:
    from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

    from .kernel_pool import PooledKernel
    from .manager import PoolingKernelManager


class Claims:
    """What ``PoolingKernelManager`` keeps about the kernels it took from its pool."""

    def __init__(self, manager: PoolingKernelManager, log: logging.Logger) -> None:
        self._manager = manager
        self.log = log
        self._settling: dict[str, asyncio.Task[None]] = {}
        #: kernels being restarted by their own settling (which must not wait for itself)
        self._restarting: set[str] = set()
        self._head_starts: dict[str, HeadStart] = {}
        self._head_starts_used = 0

    def add(self, claimed: PooledKernel, km: ServerKernelManager) -> None:
        """A claimed kernel's start has finished: track its re-pointing and head start."""
        kernel_id = claimed.kernel_id
        if claimed.repointed is not None:
            settling = asyncio.ensure_future(self._settle(kernel_id, claimed.repointed))
            self._settling[kernel_id] = settling
            # jupyter_server awaited the old ``ready`` before the session answered; from here
            # on, whoever awaits it waits for this
            km._ready = settling
        if claimed.head_start is not None:
            self._head_starts[kernel_id] = claimed.head_start
            asyncio.get_running_loop().call_later(
                HEAD_START_TTL_S, self._expire_head_start, kernel_id, claimed.head_start
            )

    # -- re-pointing ---------------------------------------------------------------------------

    async def _settle(self, kernel_id: str, repointed: asyncio.Future[bool]) -> None:
        try:
            if await repointed:
                return
            self.log.warning("Kernel %s was not re-pointed: restarting it", kernel_id)
            self._restarting.add(kernel_id)
            try:
                await self._manager.restart_kernel(kernel_id, now=True)  # type: ignore[no-untyped-call]  # (not annotated upstream)
                # jupyter_server resets a restarted kernel's state only when its ports changed
                # (these did not): the old process's last status (busy with the re-pointing)
                # would stay until the new one says otherwise, and jupyter_server does not
                # nudge a busy kernel's new websocket, whose first request could then run
                # before its iopub subscription reaches the kernel (and its output be lost)
                kernel = self._manager.get_kernel(kernel_id)
                kernel.execution_state = "starting"  # type: ignore[attr-defined]  # (set by jupyter_server)
            except (HTTPError, KeyError, *POOL_ERRORS) as e:  # shut down meanwhile, cannot start
                self.log.warning("Kernel %s: restart failed: %r", kernel_id, e)
            except Exception as e:  # a bug of ours: the kernel's clients are let go anyway
                count_error("pool.restart_unpointed", e, f"restarting {kernel_id}", logger=self.log)
            finally:
                self._restarting.discard(kernel_id)
        finally:
            self._settling.pop(kernel_id, None)

    async def until_settled(self, kernel_id: str) -> None:
        """Wait until a claimed kernel has run its re-pointing code or been restarted."""
        settling = self._settling.get(kernel_id)
        if settling is not None and kernel_id not in self._restarting:
            await asyncio.wait({settling})

    def when_settled(self, kernel_id: str) -> asyncio.Task[None] | None:
        """The settling of a claimed kernel still under way (None once settled)."""
        return self._settling.get(kernel_id)

    # -- head starts ---------------------------------------------------------------------------

    def head_start(self, kernel_id: str) -> HeadStart | None:
        return self._head_starts.get(kernel_id)

    def take_head_start(self, kernel_id: str) -> HeadStart | None:
        return self._head_starts.pop(kernel_id, None)

    def head_start_used(self) -> None:
        self._head_starts_used += 1

    def _expire_head_start(self, kernel_id: str, head_start: HeadStart) -> None:
        if self._head_starts.get(kernel_id) is head_start:
            del self._head_starts[kernel_id]
            head_start.close()

    # -- all -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "settling": len(self._settling),
            "head_starts": {"waiting": len(self._head_starts), "used": self._head_starts_used},
        }

    def close(self) -> None:
        """Close the head starts nobody took (server exit)."""
        for head_start in self._head_starts.values():
            head_start.close()
        self._head_starts.clear()
