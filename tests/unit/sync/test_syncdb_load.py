"""SyncDB.load: an import applied to an empty table tells its listeners what apply_update would,
without Yjs's per-record events."""

from __future__ import annotations

import pytest

from jupyter_cocalc_sync.format.ipynb import initial_update
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import FILE, Origin
from jupyter_cocalc_sync.sync.events import ChangeEvent
from jupyter_cocalc_sync.sync.table import Record, SyncDB

ME = Origin.of_user("me")
RECORDS: list[Record] = [
    {"type": "settings", "id": "main", "kernel": "python3", "metadata": {}},
    *(
        {
            "type": "cell",
            "id": f"c{i}",
            "cell_type": "code",
            "input": f"x = {i}",
            "pos": float(i),
            "output": {"0": {"output_type": "stream", "name": "stdout", "text": f"{i}\n"}},
        }
        for i in range(5)
    ),
]


def by_key(records: list[Record]) -> dict[tuple[str, str], Record]:
    return {(r["type"], r["id"]): r for r in records}


def watched() -> tuple[SyncDB, list[ChangeEvent], list[bytes]]:
    db = notebook_syncdb()
    events: list[ChangeEvent] = []
    updates: list[bytes] = []
    db.on_change(events.append)
    db.on_update(lambda update, origin: updates.append(update))
    return db, events, updates


def test_load_tells_listeners_what_apply_update_does() -> None:
    update = initial_update(RECORDS)
    applied, applied_events, applied_updates = watched()
    applied.apply_update(update, FILE)
    loaded, loaded_events, loaded_updates = watched()
    loaded.load(update, RECORDS, FILE)

    assert by_key(loaded.get()) == by_key(applied.get())
    assert loaded_updates == [update] and len(applied_updates) == 1
    [expected], [got] = applied_events, loaded_events
    assert (got.origin, got.local) == (expected.origin, expected.local)
    assert got.changes == expected.changes


def test_a_loaded_table_is_observed_as_before() -> None:
    db, events, updates = watched()
    db.load(initial_update(RECORDS), RECORDS, FILE)
    db.set({"type": "cell", "id": "c1", "input": "changed"}, ME)
    db.commit(ME)
    assert len(updates) == 2
    assert events[-1].changes[("cell", "c1")].fields == {"input"}


def test_load_is_for_an_empty_table() -> None:
    db, _, _ = watched()
    db.load(initial_update(RECORDS), RECORDS, FILE)
    with pytest.raises(RuntimeError):
        db.load(initial_update(RECORDS), RECORDS, FILE)
