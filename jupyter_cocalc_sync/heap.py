"""The server's heap: the memory a big import freed, and the objects the collector walks.

Opening a big notebook parses its file, converts it and builds two Yjs documents from it; the
parse and the conversion run in worker threads, whose glibc malloc arenas keep the freed
memory mapped (the event loop's thread allocates from another arena, so it does not reuse it).
Without a trim the server's resident memory stays at the import's peak: for a 50 MB notebook
about 100 MB more than the documents it keeps need.

Python's cyclic garbage collector walks every container object the process holds each time
its oldest generation is collected, and opening a notebook (its records, the JSON it was parsed
from) allocates enough to set one off. Most of what it walks is the server's own code (the
modules, classes and functions of jupyter_server and its extensions, a few hundred thousand
objects, none of them ever garbage): collected once the server has started and then frozen
(``gc.freeze``), they are never walked again, and a cold open no longer pays for them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
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


def freeze_startup_objects() -> int:
    """Collect what starting the server left unreachable, then keep every object alive now out
    of the collector's walks (module docstring); returns how many objects that froze."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
