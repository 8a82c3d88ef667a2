"""A kernel's process: noticing its death at once, and following jupyter_server's restarts.

Death is noticed when the kernel process exits (a Linux pidfd watched by the event loop;
polling ``is_alive()`` where that is unavailable), not when some timeout runs out: nothing
is ever waited on after the process is gone. Attached kernels also listen to jupyter_server's
restarter, which restarts dead kernels by itself; ``RestarterWatch`` tells when it acted and
when a new process is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.multikernelmanager import MultiKernelManager

from ..errors import KernelError

#: How often ``is_alive()`` is polled where the process exit cannot be awaited (no pidfd).
LIVENESS_POLL_INTERVAL = 0.5

#: a kernel manager's ``ready``: an asyncio future, or a concurrent one (jupyter_client)
Ready: TypeAlias = "asyncio.Future[Any] | ConcurrentFuture[Any]"


async def wait_for_exit(km: AsyncKernelManager) -> int | None:
    """Return when the kernel process of ``km`` exits, with its exit code if known.

    A pidfd becomes readable when the process exits (a zombie counts), so the event loop learns
    of a death at once without polling. Only local processes have one; others are polled with
    ``is_alive()``.
    """
    process = getattr(km.provisioner, "process", None)
    pidfd = None
    if process is not None and hasattr(os, "pidfd_open") and process.poll() is None:
        # Safe from pid reuse: the kernel is our child and stays a zombie until reaped by poll().
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(process.pid)
    if pidfd is not None:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, readable)
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    else:
        while await km.is_alive():
            await asyncio.sleep(LIVENESS_POLL_INTERVAL)
    return process.poll() if process is not None else None


async def wait_for(future: Ready) -> None:
    """Await a kernel manager's ``ready`` future without cancelling it if we are cancelled."""
    await asyncio.shield(
        asyncio.wrap_future(future) if isinstance(future, ConcurrentFuture) else future
    )


async def settled(future: Ready) -> None:
    """Wait until ``future`` is done, whatever its outcome (the caller reads it off ``future``),
    without cancelling it if we are cancelled."""
    waiter = asyncio.wrap_future(future) if isinstance(future, ConcurrentFuture) else future
    await asyncio.wait({waiter})
    if waiter is not future and not waiter.cancelled():
        waiter.exception()  # retrieved here: the wrapper's outcome is read off ``future``


class RestarterWatch:
    """jupyter_server's restarter and shutdowns, as seen by one attached kernel.

    ``on_death(reason)`` is called when the restarter found the process dead (it is about to
    restart it, or gave up: then ``gone`` is set).
    """

    def __init__(
        self, mkm: MultiKernelManager, kernel_id: str, on_death: Callable[[str], None]
    ) -> None:
        self.mkm = mkm
        self.kernel_id = kernel_id
        #: jupyter_server shut the kernel down or gave up restarting it
        self.gone = False
        self._on_death = on_death
        self._acted = asyncio.Event()
        self._callbacks = [("restart", self._on_restart), ("dead", self._on_dead)]

    def subscribe(self) -> None:
        for event, callback in self._callbacks:
            self.mkm.add_restart_callback(self.kernel_id, callback, event)

    def unsubscribe(self) -> None:
        if self.kernel_id in self.mkm:
            for event, callback in self._callbacks:
                self.mkm.remove_restart_callback(self.kernel_id, callback, event)

    @property
    def kernel_exists(self) -> bool:
        return not self.gone and self.kernel_id in self.mkm

    def _on_restart(self) -> None:
        """jupyter_server found the process dead and is about to restart it."""
        self._on_death("The kernel died; it is being restarted.")
        self._acted.set()

    def _on_dead(self) -> None:
        """jupyter_server gave up restarting the kernel and removes it."""
        self.gone = True
        self._on_death("The kernel died and could not be restarted.")
        self._acted.set()

    async def new_process(self, stale_ready: Ready | None, timeout: float) -> None:
        """Return once jupyter_server has a process behind the kernel id other than the one
        whose ``ready`` future is ``stale_ready``; ``KernelError`` if it never comes."""
        km = self.mkm.get_kernel(self.kernel_id) if self.kernel_id in self.mkm else None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if not self.kernel_exists or km is None:
                        raise KernelError(
                            "The kernel of this session is gone (shut down, or it kept dying); "
                            "start a new session."
                        )
                    ready = km.ready
                    if not ready.done():
                        # ``ready`` is replaced by each shutdown and start: wait for this one
                        # (its outcome is read below), then look again.
                        await settled(ready)
                        continue
                    if (
                        ready is not stale_ready
                        and not ready.cancelled()
                        and ready.exception() is None
                        and not km.shutting_down
                        and km.has_kernel
                    ):
                        return
                    # The dead process is still the current one: the restarter acts on its
                    # next poll (every ``time_to_dead`` seconds), or someone restarts the
                    # kernel first (jupyter_server's ``restart_kernel`` replaces ``ready`` and
                    # calls no restart callback: the restarter then finds the new process
                    # alive and never acts), so ``ready`` is looked at again meanwhile.
                    # (``asyncio.timeout``, not ``wait_for``: Python 3.11's ``wait_for`` loses
                    # a cancellation that lands as the event is set, and a stopping server
                    # then waits for this loop forever)
                    self._acted.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LIVENESS_POLL_INTERVAL):
                            await self._acted.wait()
        except TimeoutError:
            raise KernelError(
                f"jupyter_server did not restart the kernel within {timeout} s."
            ) from None
