"""SyncDB: record semantics, the wire layout, validation, change events."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Map, Text

from jupyter_cocalc_sync import SyncDB
from jupyter_cocalc_sync.errors import InvalidRecordError
from jupyter_cocalc_sync.format.schema import notebook_syncdb


def make_db() -> SyncDB:
    return notebook_syncdb()


def test_seed_api_example_works():
    db = SyncDB(primary_keys=["type", "id"], string_cols=["input"])
    db.set({"type": "cell", "id": "c1", "input": "x = 1"})
    db.commit()
    assert db.get_one({"type": "cell", "id": "c1"})["input"] == "x = 1"
    db.set({"type": "settings", "id": "main", "kernel": "python3"})
    db.commit()
    assert db.get_one({"type": "settings", "id": "main"})["kernel"] == "python3"


def test_wire_layout_is_what_any_yjs_client_sees():
    db = make_db()
    db.set(
        {
            "type": "cell",
            "id": "a1b2",
            "input": "print(1)",
            "output": {
                "0": {"output_type": "stream", "name": "stdout", "text": "1\n"},
                "1": {"output_type": "display_data", "data": {"text/plain": "2"}, "metadata": {}},
            },
            "pos": 1.5,
            "tags": {"x": True},
        }
    )
    db.commit()
    # a plain pycrdt client, knowing nothing of SyncDB
    peer = Doc()
    peer.apply_update(db.get_update())
    records = peer.get("records", type=Map)
    assert list(records.keys()) == ['["cell","a1b2"]']
    record = records['["cell","a1b2"]']
    assert isinstance(record, Map)
    assert record["type"] == "cell" and record["id"] == "a1b2"
    assert isinstance(record["input"], Text) and str(record["input"]) == "print(1)"
    assert isinstance(record["output"], Map)
    stream = record["output"]["0"]  # a stream's text is a Text: it grows by appends
    assert isinstance(stream, Map) and isinstance(stream["text"], Text)
    assert str(stream["text"]) == "1\n" and stream["name"] == "stdout"
    assert isinstance(record["output"]["1"], dict)  # other outputs are plain JSON values
    assert record["output"]["1"]["data"] == {"text/plain": "2"}
    assert record["pos"] == 1.5


def test_set_merges_dicts_one_level_and_none_deletes():
    db = make_db()
    db.set({"type": "cell", "id": "c", "metadata": {"a": 1, "b": {"x": 1}}, "collapsed": True})
    db.set({"type": "cell", "id": "c", "metadata": {"b": {"y": 2}, "c": 3}})
    db.set({"type": "cell", "id": "c", "metadata": {"a": None}, "collapsed": None})
    rec = db.get_one({"type": "cell", "id": "c"})
    assert rec["metadata"] == {"b": {"y": 2}, "c": 3}  # one level deep: b replaced
    assert "collapsed" not in rec


def test_output_map_merges_per_message():
    db = make_db()
    db.set({"type": "cell", "id": "c", "output": {"0": {"output_type": "stream"}}})
    db.set({"type": "cell", "id": "c", "output": {"1": {"output_type": "error"}}})
    assert set(db.get_one({"type": "cell", "id": "c"})["output"]) == {"0", "1"}
    db.set({"type": "cell", "id": "c", "output": {"0": None}})
    assert set(db.get_one({"type": "cell", "id": "c"})["output"]) == {"1"}
    db.set({"type": "cell", "id": "c", "output": None})
    assert "output" not in db.get_one({"type": "cell", "id": "c"})


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("hello", "help"),
        ("a😀b", "a😀😀b"),
        ("日本語のテキスト", "日本のテキスト!"),
        ("e\u0301cole", "e\u0301e\u0301cole"),  # combining accents
        ("", "👩‍👩‍👧 family"),
        ("שלום עולם", "שלום"),
    ],
)
def test_string_column_edits_are_minimal_and_unicode_exact(old, new):
    db = make_db()
    db.set({"type": "cell", "id": "c", "input": old})
    db.commit()
    peer = make_db()
    peer.apply_update(db.get_update())
    deltas = []
    peer.on_change(lambda e: deltas.append(e.changes[("cell", "c")].text_deltas.get("input")))
    state = peer.get_state()
    db.set({"type": "cell", "id": "c", "input": new})
    db.commit()
    peer.apply_update(db.get_update(state))
    assert peer.get_one({"type": "cell", "id": "c"})["input"] == new
    # the change travels as a text edit, not as a replaced string
    assert deltas and deltas[0] is not None


def test_concurrent_typing_in_one_cell_merges_character_wise():
    a, b = make_db(), make_db()
    a.set({"type": "cell", "id": "c", "input": "hello world"})
    a.commit()
    b.apply_update(a.get_update())
    sa, sb = a.get_state(), b.get_state()
    a.set({"type": "cell", "id": "c", "input": "hello, world"})
    b.set({"type": "cell", "id": "c", "input": "hello world!"})
    a.commit(), b.commit()
    a.apply_update(b.get_update(sa))
    b.apply_update(a.get_update(sb))
    assert a.get_one({"type": "cell", "id": "c"})["input"] == "hello, world!"
    assert b.get() == a.get()


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "cell"},  # missing id
        {"id": "x"},  # missing type
        {"type": "cell", "id": "c", "input": 3},
        {"type": "cell", "id": "c", "cell_type": "python"},
        {"type": "cell", "id": "c", "pos": "first"},
        {"type": "cell", "id": "c", "state": "running"},
        {"type": "cell", "id": "c", "output": ["not", "a", "map"]},
        {"type": "cell", "id": "c", "metadata": {"x": float("nan")}},
        {"type": "cell", "id": "c", "metadata": {"x": object()}},
        {"type": "settings", "id": "main", "max_output_length": -5},
        {"type": "cell", "id": "", "input": ""},
        "not a record",
    ],
)
def test_invalid_records_raise_and_change_nothing(bad):
    db = make_db()
    db.set({"type": "cell", "id": "c", "input": "keep me", "pos": 0})
    db.commit()
    before_state, before = db.get_state(), db.get()
    updates = []
    db.on_update(lambda u, o: updates.append(u))
    with pytest.raises(InvalidRecordError):
        db.set(bad)
    assert not db.commit()
    assert db.get() == before and db.get_state() == before_state and updates == []


def test_commit_is_one_update_for_many_sets():
    db = make_db()
    updates = []
    db.on_update(lambda u, origin: updates.append(origin))
    for i in range(5):
        db.set({"type": "cell", "id": f"c{i}", "input": str(i), "pos": i})
    assert updates == []
    assert db.commit()
    assert updates == ["local"]
    assert not db.commit()


def test_change_events_name_records_fields_and_origin():
    a, b = make_db(), make_db()
    events = []
    b.on_change(events.append)
    a.set({"type": "cell", "id": "c", "input": "x", "pos": 0})
    a.commit()
    b.apply_update(a.get_update(), origin="peer-a")
    assert events[-1].origin == "peer-a" and not events[-1].local
    change = events[-1].changes[("cell", "c")]
    assert change.action == "add" and {"input", "pos"} <= change.fields
    b.set({"type": "cell", "id": "c", "pos": 2})
    assert events[-1].local and events[-1].changes[("cell", "c")].fields == {"pos"}
    b.delete({"type": "cell", "id": "c"})
    assert events[-1].changes[("cell", "c")].action == "delete"


def test_get_where_and_delete_where():
    db = make_db()
    for i in range(4):
        db.set({"type": "cell", "id": f"c{i}", "cell_type": "code" if i % 2 else "markdown"})
    db.set({"type": "settings", "id": "main", "kernel": "python3"})
    assert len(db.get({"type": "cell"})) == 4
    assert {r["id"] for r in db.get({"cell_type": "code"})} == {"c1", "c3"}
    assert db.delete({"cell_type": "markdown"}) == 2
    assert len(db) == 3
    with pytest.raises(InvalidRecordError):
        db.delete(None)  # type: ignore[arg-type]


def test_values_read_back_as_json_with_integral_numbers_as_ints():
    db = make_db()
    db.set({"type": "cell", "id": "c", "exec_count": 3, "metadata": {"w": 640, "r": 0.5}})
    rec = db.get_one({"type": "cell", "id": "c"})
    assert rec["exec_count"] == 3 and isinstance(rec["exec_count"], int)
    assert rec["metadata"] == {"w": 640, "r": 0.5}
    rec["metadata"]["w"] = 1  # a copy: the table is unchanged
    assert db.get_one({"type": "cell", "id": "c"})["metadata"]["w"] == 640
