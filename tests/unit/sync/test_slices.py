"""read_in_slices: every record of a big table, read while the event loop keeps running, as the
table was at one instant."""

from __future__ import annotations

import asyncio

import pytest

from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import Origin
from jupyter_cocalc_sync.sync import slices
from jupyter_cocalc_sync.sync.slices import read_in_slices
from jupyter_cocalc_sync.sync.table import Record, SyncDB

ME = Origin.of_user("me")
CELLS = 200


def table() -> SyncDB:
    db = notebook_syncdb()
    with db.transaction(ME):
        for i in range(CELLS):
            db.set({"type": "cell", "id": f"c{i}", "input": f"x = {i}", "pos": float(i)}, ME)
    db.commit(ME)
    return db


def by_key(records: list[Record]) -> dict[tuple[str, str], Record]:
    return {(r["type"], r["id"]): r for r in records}


@pytest.fixture
def one_record_per_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slices, "SLICE_SECONDS", 0.0)


async def settled() -> int:
    return 7


async def test_reads_every_record_as_get_does() -> None:
    db = table()
    records, version = await read_in_slices(db, settled)
    assert version == 7
    assert by_key(records) == by_key(db.get())


async def test_the_event_loop_runs_other_tasks_while_a_big_table_is_read(
    one_record_per_slice: None,
) -> None:
    db = table()
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(other_task())
    await asyncio.sleep(0)
    before = turns
    await read_in_slices(db, settled)
    task.cancel()
    # one turn of the other task per slice: a read at once would give it none
    assert turns - before >= CELLS // 2


async def test_changes_made_while_reading_are_in_the_result_as_of_the_end(
    one_record_per_slice: None,
) -> None:
    db = table()
    state_at_settle: list[Record] = []

    async def edit_while_read() -> None:
        for i in range(0, CELLS, 3):
            db.set({"type": "cell", "id": f"c{i}", "input": f"changed {i}"}, ME)
            if i % 2:
                db.delete({"type": "cell", "id": f"c{i + 1}"}, ME)
            db.set({"type": "cell", "id": f"new{i}", "input": "new", "pos": 1000.0 + i}, ME)
            db.commit(ME)
            await asyncio.sleep(0)

    async def settle() -> int:
        await editing  # every edit is made before the read ends
        state_at_settle.extend(db.get())
        return 9

    editing = asyncio.get_running_loop().create_task(edit_while_read())
    records, version = await read_in_slices(db, settle)
    assert version == 9
    assert by_key(records) == by_key(state_at_settle)
    assert by_key(records)[("cell", "c0")]["input"] == "changed 0"
    assert ("cell", "c4") not in by_key(records)
    assert ("cell", "new3") in by_key(records)


async def test_a_change_while_settling_is_read_in_the_last_step(one_record_per_slice: None) -> None:
    db = table()

    async def settle() -> int:
        await asyncio.sleep(0)
        db.set({"type": "cell", "id": "c5", "input": "written while settling"}, ME)
        db.commit(ME)
        return 3

    records, _ = await read_in_slices(db, settle)
    assert by_key(records)[("cell", "c5")]["input"] == "written while settling"
