"""Refills yield to kernel starts: the CPU a user's open needs is not the pool's.

A kernel start in the manager (a claim, or a normal start) is "under way" from its beginning to
its end, and the pool stays quiet for ``launch_delay_ms`` after the last one: no refill begins
meanwhile (``until_quiet``), and a pooled kernel already booting when a start begins runs at
low CPU priority (``priority``) until then, or until a start takes it over (``restore``).

Except when the pool is empty: opens that overlap (each a cold start on a busy machine) would
keep it quiet, and empty, for as long as they go on. Then a refill begins ``launch_delay_ms``
after the last start began, at normal priority: the next open takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from . import priority


class StartsUnderWay:
    """The manager's kernel starts, and the pooled kernels lowered while they run."""

    def __init__(
        self,
        delay_s: Callable[[], float],
        booting_pids: Callable[[], list[int]],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        #: how long the pool stays quiet after a start (the pool's ``launch_delay_ms``)
        self._delay_s = delay_s
        self._booting_pids = booting_pids
        self._spawn = spawn
        self._count = 0
        self._none = asyncio.Event()
        self._none.set()
        #: when the last start ended (monotonic; None: none yet, or one under way)
        self._quiet_since: float | None = None
        #: when the last start began (monotonic)
        self._last_began: float | None = None
        self._lowered: dict[int, priority.Lowered] = {}
        self._restore_timer: asyncio.TimerHandle | None = None
        self._closed = False

    @contextlib.contextmanager
    def start(self) -> Iterator[None]:
        """Around one kernel start."""
        self._count += 1
        self._none.clear()
        self._quiet_since = None
        self._last_began = time.monotonic()
        for pid in self._booting_pids():  # (ready ones are idle)
            self.lower(pid)
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._quiet_since = time.monotonic()
                self._none.set()
                if self._lowered:
                    self._restore_later()

    def yielding(self) -> bool:
        """Whether pooled kernels yield the CPU now (a start under way, or just ended)."""
        if self._count:
            return True
        since = self._quiet_since
        return since is not None and time.monotonic() < since + self._delay_s()

    async def until_quiet(self, *, empty: bool = False) -> None:
        """Return once no start is under way and the last one ended ``delay_s`` ago; for an
        ``empty`` pool, once the last start began ``delay_s`` ago."""
        while not self._closed and empty:
            began = self._last_began
            wait = 0.0 if began is None else began + self._delay_s() - time.monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(wait)  # (a start meanwhile moves the time on: checked again)
        while not self._closed:
            if self._count:
                await self._none.wait()
                continue
            since = self._quiet_since
            wait = 0.0 if since is None else since + self._delay_s() - time.monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(wait)  # (a start meanwhile moves the time on: checked again)

    def lower(self, pid: int) -> None:
        """Run a pooled kernel process at low priority until the pool is quiet."""
        if pid not in self._lowered:
            lowered = priority.lower(pid)
            if lowered is not None:
                self._lowered[pid] = lowered

    async def restore(self, pid: int | None) -> None:
        """Give a pooled kernel process the normal priority (a claim does, first thing)."""
        lowered = self._lowered.pop(pid, None) if pid is not None else None
        if lowered is not None:
            await priority.restore(lowered)

    def forget(self, pid: int | None) -> None:
        """A pooled kernel process was stopped."""
        if pid is not None:
            self._lowered.pop(pid, None)

    def close(self) -> None:
        self._closed = True
        if self._restore_timer is not None:
            self._restore_timer.cancel()

    def _restore_later(self) -> None:
        if self._restore_timer is not None:
            self._restore_timer.cancel()
        loop = asyncio.get_running_loop()
        self._restore_timer = loop.call_later(self._delay_s(), self._restore_if_quiet)

    def _restore_if_quiet(self) -> None:
        self._restore_timer = None
        if not self._closed and not self.yielding():
            for pid in list(self._lowered):
                self._spawn(self.restore(pid))
