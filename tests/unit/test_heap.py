"""``heap.release_freed_memory``: memory a worker thread freed goes back to the operating
system (glibc keeps it mapped in the thread's arena otherwise); ``heap.freeze_startup_objects``:
what a started server holds is out of the collector's walks, its garbage collected first."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jupyter_cocalc_sync.heap import _malloc_trim, release_freed_memory

#: below glibc's mmap threshold (each is a heap chunk, not a mapping of its own)
CHUNK = 60_000
CHUNKS = 2_000  # 120 MB
PAGE = 4096


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


def fragmented_arena() -> list[bytes]:
    """In a worker thread (its own arena), allocate big chunks with small ones between them,
    then free the big ones: the small ones keep the heap's top in use, so free() cannot give
    anything back by itself. Returns the small ones (they stay allocated)."""
    kept: list[bytes] = []

    def allocate() -> None:
        big = []
        for i in range(CHUNKS):
            big.append(bytes([i % 256]) * CHUNK)
            kept.append(bytes([i % 256]) * 600)
        big.clear()

    thread = threading.Thread(target=allocate)
    thread.start()
    thread.join()
    return kept


@pytest.mark.skipif(_malloc_trim() is None, reason="needs glibc's malloc_trim")
async def test_memory_a_worker_thread_freed_is_given_back() -> None:
    kept = fragmented_arena()
    before = resident_bytes()
    assert await release_freed_memory()
    after = resident_bytes()
    # most of the 120 MB freed comes back (the small chunks pin a page each at most)
    assert before - after > CHUNK * CHUNKS // 2, (before, after)
    assert len(kept) == CHUNKS


FREEZE = """
import gc, weakref
from jupyter_cocalc_sync.heap import freeze_startup_objects

class Node:
    pass

garbage = Node()
garbage.cycle = garbage  # only the collector frees it
gone = weakref.ref(garbage)
del garbage
kept = Node()
gc.disable()  # (no collection but the function's own)
frozen = freeze_startup_objects()
print(gone() is None, frozen == gc.get_freeze_count() > 0, kept in gc.get_objects())
"""


def test_the_objects_of_a_started_server_are_frozen_once_its_garbage_is_collected() -> None:
    # (a fresh interpreter: freezing this one would keep every test's garbage)
    result = subprocess.run(
        [sys.executable, "-c", FREEZE], capture_output=True, text=True, check=True, timeout=120
    )
    # the cycle was collected before the freeze; what is alive is frozen, no longer walked
    assert result.stdout.split() == ["True", "True", "False"]
    assert gc.get_freeze_count() == 0  # (this process untouched)
