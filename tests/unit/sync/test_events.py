"""What a SyncDB's change events say (``sync/events.py``): for each kind of change, the same
description on the replica that made it and on a peer that applied its update; and they are
read from Yjs's events without pycrdt's conversion of every event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pycrdt import Map, Text

from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import Origin
from jupyter_cocalc_sync.sync.table import ChangeEvent, RecordChange, SyncDB

ME = Origin.of_user("me")
PEER = Origin.of_user("peer")

CELL = ("cell", "c")
STREAM = {"output_type": "stream", "name": "stdout", "text": "hi\n"}


def _replace_output(db: SyncDB) -> None:
    with db.transaction(ME):  # (a write to the document itself, as the server's writers do)
        db.record_map(CELL)["output"] = Map({"5": 1})  # type: ignore[index]


def _replace_record(db: SyncDB) -> None:
    with db.transaction(ME):
        db.records['["cell","c"]'] = Map({"type": "cell", "id": "c"})


def _typing_and_a_move(db: SyncDB) -> None:
    with db.transaction(ME):
        text = db.record_map(CELL)["input"]  # type: ignore[index]
        text += "!"
        db.set({"type": "cell", "id": "c", "pos": 3}, ME)


#: (what A does, the change of cell c both A's and B's listeners are told of)
CHANGES: list[tuple[str, Callable[[SyncDB], object], RecordChange]] = [
    (
        "a field",
        lambda db: db.set({"type": "cell", "id": "c", "state": "busy"}, ME),
        RecordChange(CELL, "update", {"state"}, replaced={"state"}),
    ),
    (
        "typing",
        lambda db: db.set({"type": "cell", "id": "c", "input": "x=12"}, ME),
        RecordChange(CELL, "update", {"input"}, {"input": [{"retain": 3}, {"insert": "2"}]}),
    ),
    (
        "a stream grown",
        lambda db: db.set(
            {"type": "cell", "id": "c", "output": {"0": {**STREAM, "text": "hi\nthere\n"}}}, ME
        ),
        RecordChange(
            CELL,
            "update",
            {"output"},
            entries={"output": {"0"}},
            entry_text_deltas={("output", "0"): [{"retain": 3}, {"insert": "there\n"}]},
        ),
    ),
    (
        "outputs added and removed",
        lambda db: db.set({"type": "cell", "id": "c", "output": {"1": {"x": 1}, "0": None}}, ME),
        RecordChange(CELL, "update", {"output"}, entries={"output": {"0", "1"}}),
    ),
    (
        "a map column replaced",
        _replace_output,
        RecordChange(CELL, "update", {"output"}, replaced={"output"}),
    ),
    (
        "a field removed",
        lambda db: db.set({"type": "cell", "id": "c", "pos": None}, ME),
        RecordChange(CELL, "update", {"pos"}, replaced={"pos"}),
    ),
    (
        "typing and another field",
        _typing_and_a_move,
        RecordChange(
            CELL,
            "update",
            {"input", "pos"},
            {"input": [{"retain": 3}, {"insert": "!"}]},
            replaced={"pos"},
        ),
    ),
    (
        "the record replaced",
        _replace_record,
        RecordChange(CELL, "add", {"type", "id"}),
    ),
    (
        "the record deleted",
        lambda db: db.delete({"type": "cell", "id": "c"}, ME),
        RecordChange(CELL, "delete"),
    ),
]


def _pair() -> tuple[SyncDB, SyncDB, list[ChangeEvent], list[ChangeEvent]]:
    a, b = notebook_syncdb(), notebook_syncdb()
    seen_a: list[ChangeEvent] = []
    seen_b: list[ChangeEvent] = []
    a.on_change(seen_a.append)
    b.on_change(seen_b.append)
    record = {"type": "cell", "id": "c", "input": "x=1", "pos": 0, "output": {"0": STREAM}}
    a.set(record, ME)
    a.commit(ME)
    b.apply_update(a.get_update(), PEER)
    assert seen_a[-1].changes[CELL] == seen_b[-1].changes[CELL]
    assert seen_b[-1].changes[CELL].action == "add"
    assert seen_b[-1].changes[CELL].fields == set(record)
    seen_a.clear()
    seen_b.clear()
    return a, b, seen_a, seen_b


@pytest.mark.parametrize(
    ("change", "expected"), [(c[1], c[2]) for c in CHANGES], ids=[c[0] for c in CHANGES]
)
def test_each_kind_of_change_is_described_alike_where_made_and_on_a_peer(
    change: Callable[[SyncDB], object], expected: RecordChange
) -> None:
    a, b, seen_a, seen_b = _pair()
    a.peek(CELL), b.peek(CELL)  # (cached: a change that is not typing drops the cache)
    state = b.get_state()
    change(a)
    a.commit(ME)
    b.apply_update(a.get_update(state), PEER)
    assert [e.changes for e in seen_a] == [{CELL: expected}]
    assert [(e.origin, e.local) for e in seen_b] == [(PEER, False)]
    assert seen_b[0].changes == {CELL: expected}
    assert b.peek(CELL) == a.peek(CELL) == _read(a)


def _read(db: SyncDB) -> dict[str, Any] | None:
    stored = db.record_map(CELL)
    if stored is None:
        return None
    return {name: str(v) if isinstance(v, Text) else _plain(v) for name, v in stored.items()}


def _plain(value: object) -> object:
    return value.to_py() if isinstance(value, Map) else value


def test_changes_are_read_without_pycrdts_conversion_of_every_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pycrdt import _base

    def converted(*args: object) -> None:
        raise AssertionError("an event converted by pycrdt")

    a, b, seen_a, seen_b = _pair()
    monkeypatch.setattr(_base.BaseEvent, "__init__", converted)
    state = b.get_state()
    a.set({"type": "cell", "id": "c", "input": "y", "state": "busy"}, ME)
    a.commit(ME)
    b.apply_update(a.get_update(state), PEER)
    assert seen_a[0].changes == seen_b[0].changes
    assert seen_b[0].changes[CELL].fields == {"input", "state"}
