"""The server's heap: the memory a big import freed, and the objects the collector walks.

Opening a big notebook parses its file, converts it and builds two Yjs documents from it; the
parse and the conversion run in worker threads, whose glibc malloc arenas keep the freed
memory mapped (the event loop's thread allocates from another arena, so it does not reuse it).
Without a trim the server's resident memory stays at the import's peak: for a 50 MB notebook
about 100 MB more than the documents it keeps need.

A trim is not free, though: each page it gives back is faulted in (and zeroed) again by the
next open that needs that memory, in system time. Opens that come in a burst (a class opening
its notebooks, a user opening several) would each trim and fault the same memory back in, so
the requests are coalesced (``release_freed_memory_soon``): one trim once ``RELEASE_DELAY``
seconds pass without a new one (``RELEASE_AT_THE_LATEST`` after the first), the opens between
them reusing the memory the first freed. A cold open of an 11 MB notebook faulted in ~22,000
pages (90 MB) with a trim after each open, ~7,000 (the stock server's count) with one per
burst.

Python's cyclic garbage collector walks every container object the process holds each time
its oldest generation is collected, and opening a notebook (its records, the JSON it was parsed
from) allocates enough to set one off. Most of what it walks is the server's own code (the
modules, classes and functions of jupyter_server and its extensions, a few hundred thousand
objects, none of them ever garbage): collected once the server has started and then frozen
(``gc.freeze``), they are never walked again, and a cold open no longer pays for them.

The youngest generation is still collected every 700 new container objects (CPython's
default), and each collection walks what its objects hold: an open's records, the lists of
cells and outputs being built. Ten cold opens of an 11 MB notebook ran 184 of them (51 ms) and
16 of the next generation (10 ms). A started server collects it every ``YOUNG_THRESHOLD``
instead (2 collections, 4 ms): what the collector is for, cycles of garbage, waits a little
longer, most of an open's objects being freed by their reference counts anyway.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Awaitable, Callable
from functools import cache

import anyio.to_thread

log = logging.getLogger(__name__)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None where the C library has none: musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release_freed_memory_blocking() -> bool:
    """Return the heap's free pages to the operating system (every arena); whether it could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


async def release_freed_memory() -> bool:
    """``release_freed_memory_blocking`` in a worker thread (a big heap takes milliseconds to
    walk; ctypes lets go of the GIL meanwhile)."""
    return await anyio.to_thread.run_sync(release_freed_memory_blocking)


#: seconds without a new request after which freed memory is given back (module docstring):
#: opens in turns with other work are a few hundred milliseconds apart, more on a busy machine
RELEASE_DELAY = 2.0
#: seconds after the first of a stream of requests by which it is given back all the same
RELEASE_AT_THE_LATEST = 30.0


class CoalescedRelease:
    """Runs ``release`` once ``delay`` seconds pass without a new ``request``, and at the
    latest ``latest`` seconds after the first request it serves; a request made while it
    runs makes it run again after that."""

    def __init__(
        self,
        release: Callable[[], Awaitable[bool]] = release_freed_memory,
        delay: float = RELEASE_DELAY,
        latest: float = RELEASE_AT_THE_LATEST,
    ) -> None:
        self.release = release
        self.delay = delay
        self.latest = latest
        self._timer: asyncio.TimerHandle | None = None
        #: loop time of the first request the pending timer serves
        self._first = 0.0
        self._running: asyncio.Task[None] | None = None

    @property
    def pending(self) -> bool:
        """A release is waiting for its delay to pass, or running."""
        return self._timer is not None or self._running is not None

    def request(self) -> None:
        """Release freed memory ``delay`` seconds from now, unless asked again meanwhile."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._timer is not None:
            self._timer.cancel()
        else:
            self._first = now
        when = min(now + self.delay, self._first + self.latest)
        self._timer = loop.call_at(when, self._start)

    def _start(self) -> None:
        self._timer = None
        running = self._running
        if running is not None and running.get_loop() is asyncio.get_running_loop():
            self.request()  # asked again while releasing: once more after it
            return
        self._running = asyncio.ensure_future(self._release())

    async def _release(self) -> None:
        try:
            await self.release()
        finally:
            self._running = None

    async def close(self) -> None:
        """Cancel a release not yet started; wait for one running."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        running = self._running
        if running is not None and running.get_loop() is asyncio.get_running_loop():
            await running


#: the process's one heap, released once opening quiets down
_coalesced = CoalescedRelease()


def release_freed_memory_soon() -> None:
    """Give the heap's free pages back to the operating system once no more have been asked
    for in ``RELEASE_DELAY`` seconds (module docstring); from the event loop's thread."""
    _coalesced.request()


async def stop_releasing() -> None:
    """A stopping server: no release left waiting, the one running (if any) done."""
    await _coalesced.close()


def freeze_startup_objects() -> int:
    """Collect what starting the server left unreachable, then keep every object alive now out
    of the collector's walks (module docstring); returns how many objects that froze."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


#: new container objects between two collections of the youngest generation, in a started
#: server (module docstring)
YOUNG_THRESHOLD = 10_000


def collect_young_objects_less_often() -> None:
    """Collect the youngest generation every ``YOUNG_THRESHOLD`` new container objects (the
    older generations keep their thresholds: a collection of each per ten of the younger)."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
