"""``heap.release_freed_memory``: memory a worker thread freed goes back to the operating
system (glibc keeps it mapped in the thread's arena otherwise), once for a burst of requests
(``CoalescedRelease``); ``heap.freeze_startup_objects``: what a started server holds is out of
the collector's walks, its garbage collected first."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jupyter_cocalc_sync.heap import CoalescedRelease, _malloc_trim, release_freed_memory

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


class CountedRelease:
    """A release that counts its calls; each call waits for ``gate`` (when set) to be done."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()
        self.gate: asyncio.Future[None] | None = None

    async def __call__(self) -> bool:
        self.calls += 1
        self.called.set()
        if self.gate is not None:
            await self.gate
        return True


async def test_requests_in_a_burst_release_memory_once() -> None:
    """Opens in a burst each ask; the memory is given back once, after the last of them (a
    release per open faults the same pages in again at the next one)."""
    release = CountedRelease()
    coalesced = CoalescedRelease(release, delay=0.05)
    for _ in range(5):
        coalesced.request()
    await release.called.wait()
    assert release.calls == 1
    assert not coalesced.pending


async def test_requests_that_keep_coming_release_memory_all_the_same() -> None:
    release = CountedRelease()
    coalesced = CoalescedRelease(release, delay=60, latest=0.05)
    coalesced.request()
    coalesced.request()
    await release.called.wait()
    assert release.calls == 1


async def test_a_request_while_releasing_releases_again_after() -> None:
    release = CountedRelease()
    release.gate = asyncio.get_running_loop().create_future()
    coalesced = CoalescedRelease(release, delay=0.01)
    coalesced.request()
    await release.called.wait()
    release.called.clear()
    coalesced.request()  # (memory freed after the running release began)
    release.gate.set_result(None)
    await release.called.wait()
    assert release.calls == 2


async def test_closing_drops_a_release_not_yet_started() -> None:
    release = CountedRelease()
    coalesced = CoalescedRelease(release, delay=60)
    coalesced.request()
    assert coalesced.pending
    await coalesced.close()
    assert not coalesced.pending
    assert release.calls == 0


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


YOUNG = """
import gc
from jupyter_cocalc_sync.heap import YOUNG_THRESHOLD, collect_young_objects_less_often

class Node:
    pass

collect_young_objects_less_often()
gc.collect(0)  # (the youngest generation empty: the count below is this loop's alone)
nodes = [Node() for _ in range(YOUNG_THRESHOLD // 2)]
print(gc.get_count()[0] >= YOUNG_THRESHOLD // 2, gc.get_threshold()[1:] == (10, 10))
"""


def test_a_started_server_collects_its_youngest_objects_less_often() -> None:
    """Thousands of new containers (an open's records, the cells being built) set off no
    collection of the youngest generation, which CPython's default makes every 700."""
    result = subprocess.run(
        [sys.executable, "-c", YOUNG], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["True", "True"]
    assert gc.get_threshold()[0] < 1000  # (this process untouched)
