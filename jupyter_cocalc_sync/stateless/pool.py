"""``FreshKernelPool``: kernels started ahead of time for stateless runs, each used once.

A stateless run must not see what an earlier one left behind (names, imports, files, the
working directory), so a kernel serves exactly one request and is then killed. What the pool
saves is the start: ~0.5 s of CPU per ipykernel. It is separate from the notebooks'
``KernelPool``: those kernels are claimed by sessions and live on; these are throwaway.

Each kernel starts in a temporary folder of its own, removed with the kernel, so a run without
a ``path`` writes nowhere else. A run with a ``path`` gets an IPython kernel re-pointed to that
folder (the same re-pointing code the notebook pool uses), or a kernel started there for
other languages. A kernel name is pooled from its first request on (no kernel is started for
a server that never gets one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import KernelError
from ..errors_seen import count_error
from ..kernels.kernel import JupyterKernel
from ..pool.kernel_pool import repoint_code

T = TypeVar("T")

log = logging.getLogger(__name__)

#: how long a kernel gets to stop after an interrupt before it is killed
INTERRUPT_GRACE_S = 0.5


@dataclass(eq=False)
class FreshKernel:
    """A kernel for one stateless run, and the temporary folder it started in."""

    kernel: JupyterKernel
    scratch: str
    starting: asyncio.Task[None] | None = field(default=None, repr=False)

    async def ready(self) -> None:
        """Wait until the kernel answers (``KernelError`` if it failed to start)."""
        if self.starting is not None:
            await asyncio.shield(self.starting)
        await self.kernel.spawn()

    async def chdir(self, cwd: str) -> None:
        """Move an IPython kernel to ``cwd`` (silently: the user's first cell is ``In [1]``)."""
        code = repoint_code(cwd, None, set_session=False)
        reply = await self.kernel.execute_code(code, silent=True, store_history=False).go()
        errors = [m for m in reply if m["msg_type"] == "error"]
        if errors:
            raise KernelError(f"could not change to {cwd}: {errors[0]['content'].get('evalue')}")


class FreshKernelPool:
    """``size`` started kernels per kernel name; ``take`` hands one out for good."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pooled: dict[str, deque[FreshKernel]] = {}
        #: every kernel started and not stopped yet: pooled, being prepared, or running code
        self._live: set[FreshKernel] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    async def take(self, name: str, cwd: str | None = None) -> FreshKernel:
        """A running kernel of ``name`` nobody used, working in a fresh folder (or ``cwd``);
        the pool refills in the background. Give it back to ``discard``. ``KernelError`` if
        no kernel could be started."""
        if self._closed:
            raise KernelError("the server is shutting down")
        pooled = self._pooled.setdefault(name, deque())
        fresh = pooled.popleft() if pooled else None
        self._refill(name)
        if fresh is not None:
            try:
                if await self._prepare(fresh, cwd):
                    return fresh
            except KernelError as e:
                log.warning("stateless pool: a pooled %s kernel was not usable: %s", name, e)
            except BaseException:  # (re-raised, the kernel stopped first)
                self.discard(fresh)
                raise
            self.discard(fresh)
        # none pooled, or another language asked to work elsewhere: started where it works
        fresh = self._start(name, cwd)
        try:
            await fresh.ready()
        except BaseException:  # (re-raised, the kernel stopped first)
            self.discard(fresh)
            raise
        return fresh

    async def _prepare(self, fresh: FreshKernel, cwd: str | None) -> bool:
        """Wait for a pooled kernel; move it to ``cwd`` if it is IPython (False otherwise)."""
        await fresh.ready()
        if cwd is None:
            return True
        info = await fresh.kernel.kernel_info()
        if info.get("language_info", {}).get("name") != "python":
            return False
        await fresh.chdir(cwd)
        return True

    def _start(self, name: str, cwd: str | None = None) -> FreshKernel:
        scratch = tempfile.mkdtemp(prefix="cocalc-stateless-")
        kernel = JupyterKernel(name, cwd=cwd or scratch)
        fresh = FreshKernel(kernel, scratch)
        self._live.add(fresh)
        fresh.starting = self._background(kernel.spawn())
        return fresh

    def _refill(self, name: str) -> None:
        pooled = self._pooled[name]
        while not self._closed and len(pooled) < self.size:
            pooled.append(self._start(name))

    def discard(self, fresh: FreshKernel, *, kill: bool = False) -> asyncio.Task[None]:
        """Stop the kernel (``kill``: SIGKILL first, for runaway code) and remove its folder;
        in the background, tracked until ``close``."""
        return self._background(self._stop(fresh, kill=kill))

    async def _stop(self, fresh: FreshKernel, *, kill: bool) -> None:
        self._live.discard(fresh)
        kernel = fresh.kernel
        if fresh.starting is not None:
            # a start cancelled half-way can leave a process nobody knows about
            await asyncio.wait({fresh.starting})
        try:
            if kill and kernel.state not in ("off", "closed"):
                with contextlib.suppress(KernelError):
                    await kernel.signal(signal.SIGKILL)
            await kernel.close()
        except Exception as e:  # a bug of ours: its scratch folder goes all the same
            count_error("stateless.stop", e, "stopping a stateless kernel", logger=log)
        finally:
            await asyncio.to_thread(shutil.rmtree, fresh.scratch, True)

    async def interrupt_then_kill(self, fresh: FreshKernel, done: asyncio.Future[Any]) -> None:
        """A run past its time: interrupt, give it ``INTERRUPT_GRACE_S`` to stop, then kill
        the kernel's process group, and wait until it is gone."""
        with contextlib.suppress(KernelError):
            await fresh.kernel.interrupt()
        # still running after the grace, or ended by the interrupt: either way it is killed
        # (the run's outcome is its owner's to read)
        await asyncio.wait({done}, timeout=INTERRUPT_GRACE_S)
        await self.discard(fresh, kill=True)

    def status(self) -> dict[str, dict[str, int]]:
        """Per kernel name, pooled kernels that answer (``ready``) and that are starting."""
        status = {}
        for name, pooled in self._pooled.items():
            ready = sum(1 for fresh in pooled if fresh.kernel.state == "running")
            status[name] = {"ready": ready, "starting": len(pooled) - ready}
        return status

    def _background(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_retrieve)
        return task

    async def close(self) -> None:
        """Stop every pooled kernel and wait for the kernels being stopped."""
        self._closed = True
        pooled = {fresh for kernels in self._pooled.values() for fresh in kernels}
        self._pooled.clear()
        for fresh in pooled:
            self.discard(fresh)
        for fresh in self._live - pooled:  # the kernels of requests still going
            self.discard(fresh, kill=True)
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # a failed start is reported to whoever takes the kernel; nothing to log twice
    if not task.cancelled():
        task.exception()


__all__ = ["INTERRUPT_GRACE_S", "FreshKernel", "FreshKernelPool"]
