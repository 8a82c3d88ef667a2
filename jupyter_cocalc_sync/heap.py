"""Handing the memory a big import freed back to the operating system.

Opening a big notebook parses its file, converts it and builds two Yjs documents from it; the
parse and the conversion run in worker threads, whose glibc malloc arenas keep the freed
memory mapped (the event loop's thread allocates from another arena, so it does not reuse it).
Without a trim the server's resident memory stays at the import's peak: for a 50 MB notebook
about 100 MB more than the documents it keeps need.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
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
