"""Reading every record of a big table without stalling the event loop.

pycrdt documents are not thread-safe, so their records are read on the event loop; reading a
20 MB notebook at once holds the loop for a few hundred milliseconds. ``read_in_slices`` reads
it a slice at a time (``SLICE_SECONDS`` of work, then the loop runs other tasks), notes the
records that change meanwhile, and reads those again in a last step that does not yield: the
records it returns are the table as it was at one instant, after ``settle`` (the change log's
``durable``) returned — exactly what a one-shot ``SyncDB.get()`` right after ``settle`` gives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from .events import ChangeEvent, Key
from .table import Record, SyncDB

#: seconds of reading between two turns of the event loop
SLICE_SECONDS = 0.004
#: rounds of re-reading changed records in slices before the last step reads them at once
ROUNDS = 3
#: changed records the last step reads at once without another round
FEW = 16


async def read_in_slices(
    db: SyncDB, settle: Callable[[], Awaitable[int]]
) -> tuple[list[Record], int]:
    """Every record of ``db`` (fresh copies) and what ``settle`` returned before the last
    step: the records are those of the instant ``settle`` returned (module docstring)."""
    changed: set[Key] = set()

    def note(event: ChangeEvent) -> None:
        changed.update(event.changes)

    unsubscribe = db.on_change(note)
    try:
        records: dict[Key, Record] = {}
        # (keys(): pycrdt types ``Map.__iter__`` as an Iterable)
        keys = [db.decode_key(encoded) for encoded in db.records.keys()]  # noqa: SIM118
        await _read(db, keys, records)
        for _ in range(ROUNDS):
            if len(changed) <= FEW:
                break
            again = list(changed)
            changed.clear()
            await _read(db, again, records)
        settled = await settle()
        # from here on nothing yields: the records are the table of this instant
        for key in changed:
            _read_one(db, key, records)
    finally:
        unsubscribe()
    return list(records.values()), settled


class LoopTurns:
    """Lets the event loop run other tasks once ``SLICE_SECONDS`` of work have passed since the
    last turn (``await turns.maybe()`` between two pieces of a long job on the loop)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    async def maybe(self) -> None:
        if time.perf_counter() - self._started > SLICE_SECONDS:
            await asyncio.sleep(0)
            self._started = time.perf_counter()


async def _read(db: SyncDB, keys: Iterable[Key], into: dict[Key, Record]) -> None:
    turn = LoopTurns()
    for key in keys:
        _read_one(db, key, into)
        await turn.maybe()


def _read_one(db: SyncDB, key: Key, into: dict[Key, Record]) -> None:
    record = db.read(key)
    if record is None:
        into.pop(key, None)  # deleted meanwhile
    else:
        into[key] = record
