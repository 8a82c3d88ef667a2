"""SyncDB: record semantics, the wire layout, validation, change events."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Map, Text

from jupyter_cocalc_sync import SyncDB
from jupyter_cocalc_sync.errors import InvalidRecordError
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import Origin
from jupyter_cocalc_sync.sync.table import RecordChange
from jupyter_cocalc_sync.sync.values import checked_map_from_crdt

#: the origin of this test's own changes
ME = Origin.of_user("me")
PEER = Origin.of_user("peer")


def make_db() -> SyncDB:
    return notebook_syncdb()


def test_seed_api_example_works():
    db = SyncDB(primary_keys=["type", "id"], string_cols=["input"])
    db.set({"type": "cell", "id": "c1", "input": "x = 1"}, ME)
    db.commit(ME)
    assert db.get_one({"type": "cell", "id": "c1"})["input"] == "x = 1"
    db.set({"type": "settings", "id": "main", "kernel": "python3"}, ME)
    db.commit(ME)
    assert db.get_one({"type": "settings", "id": "main"})["kernel"] == "python3"


def test_keys_that_compare_equal_keep_their_own_stored_key() -> None:
    """Stored keys are remembered for text keys only: ``1``, ``1.0`` and ``True`` are equal
    (and one cache key) but are different keys of the table."""
    db = SyncDB(primary_keys=["id"], string_cols=[])
    for key, encoded in (
        (("é",), '["é"]'),
        ((1,), "[1]"),
        ((True,), "[true]"),
        ((1.0,), "[1.0]"),
        (["a"], '["a"]'),
    ):
        assert db.encode_key(key) == encoded  # type: ignore[arg-type]
        assert db.encode_key(key) == encoded  # (remembered the second time)
    db.set({"id": 1, "x": "one"}, ME)
    db.commit(ME)
    assert db.peek((1,)) == {"id": 1, "x": "one"}
    assert db.peek(("1",)) is None


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
        },
        ME,
    )
    db.commit(ME)
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
    db.set({"type": "cell", "id": "c", "metadata": {"a": 1, "b": {"x": 1}}, "collapsed": True}, ME)
    db.set({"type": "cell", "id": "c", "metadata": {"b": {"y": 2}, "c": 3}}, ME)
    db.set({"type": "cell", "id": "c", "metadata": {"a": None}, "collapsed": None}, ME)
    rec = db.get_one({"type": "cell", "id": "c"})
    assert rec["metadata"] == {"b": {"y": 2}, "c": 3}  # one level deep: b replaced
    assert "collapsed" not in rec


def test_output_map_merges_per_message():
    db = make_db()
    db.set({"type": "cell", "id": "c", "output": {"0": {"output_type": "stream"}}}, ME)
    db.set({"type": "cell", "id": "c", "output": {"1": {"output_type": "error"}}}, ME)
    assert set(db.get_one({"type": "cell", "id": "c"})["output"]) == {"0", "1"}
    db.set({"type": "cell", "id": "c", "output": {"0": None}}, ME)
    assert set(db.get_one({"type": "cell", "id": "c"})["output"]) == {"1"}
    db.set({"type": "cell", "id": "c", "output": None}, ME)
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
    db.set({"type": "cell", "id": "c", "input": old}, ME)
    db.commit(ME)
    peer = make_db()
    peer.apply_update(db.get_update(), PEER)
    deltas = []
    peer.on_change(lambda e: deltas.append(e.changes[("cell", "c")].text_deltas.get("input")))
    state = peer.get_state()
    db.set({"type": "cell", "id": "c", "input": new}, ME)
    db.commit(ME)
    peer.apply_update(db.get_update(state), PEER)
    assert peer.get_one({"type": "cell", "id": "c"})["input"] == new
    # the change travels as a text edit, not as a replaced string
    assert deltas and deltas[0] is not None


def test_concurrent_typing_in_one_cell_merges_character_wise():
    a, b = make_db(), make_db()
    a.set({"type": "cell", "id": "c", "input": "hello world"}, ME)
    a.commit(ME)
    b.apply_update(a.get_update(), PEER)
    sa, sb = a.get_state(), b.get_state()
    a.set({"type": "cell", "id": "c", "input": "hello, world"}, ME)
    b.set({"type": "cell", "id": "c", "input": "hello world!"}, ME)
    a.commit(ME), b.commit(ME)
    a.apply_update(b.get_update(sa), PEER)
    b.apply_update(a.get_update(sb), PEER)
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
    db.set({"type": "cell", "id": "c", "input": "keep me", "pos": 0}, ME)
    db.commit(ME)
    before_state, before = db.get_state(), db.get()
    updates = []
    db.on_update(lambda u, o: updates.append(u))
    with pytest.raises(InvalidRecordError):
        db.set(bad, ME)
    assert not db.commit(ME)
    assert db.get() == before and db.get_state() == before_state and updates == []


def test_commit_is_one_update_for_many_sets():
    db = make_db()
    updates = []
    db.on_update(lambda u, origin: updates.append(origin))
    for i in range(5):
        db.set({"type": "cell", "id": f"c{i}", "input": str(i), "pos": i}, ME)
    assert updates == []
    assert db.commit(ME)
    assert updates == [ME]
    assert not db.commit(ME)


def test_change_events_name_records_fields_and_origin():
    a, b = make_db(), make_db()
    events = []
    b.on_change(events.append)
    a.set({"type": "cell", "id": "c", "input": "x", "pos": 0}, ME)
    a.commit(ME)
    b.apply_update(a.get_update(), PEER)
    assert events[-1].origin == PEER and not events[-1].local
    change = events[-1].changes[("cell", "c")]
    assert change.action == "add" and {"input", "pos"} <= change.fields
    b.set({"type": "cell", "id": "c", "pos": 2}, ME)
    assert events[-1].local and events[-1].changes[("cell", "c")].fields == {"pos"}
    b.delete({"type": "cell", "id": "c"}, ME)
    assert events[-1].changes[("cell", "c")].action == "delete"


def test_get_where_and_delete_where():
    db = make_db()
    for i in range(4):
        db.set({"type": "cell", "id": f"c{i}", "cell_type": "code" if i % 2 else "markdown"}, ME)
    db.set({"type": "settings", "id": "main", "kernel": "python3"}, ME)
    assert len(db.get({"type": "cell"})) == 4
    assert {r["id"] for r in db.get({"cell_type": "code"})} == {"c1", "c3"}
    assert db.delete({"cell_type": "markdown"}, ME) == 2
    assert len(db) == 3
    with pytest.raises(InvalidRecordError):
        db.delete(None, ME)  # type: ignore[arg-type]


def test_values_read_back_as_json_with_integral_numbers_as_ints():
    db = make_db()
    db.set({"type": "cell", "id": "c", "exec_count": 3, "metadata": {"w": 640, "r": 0.5}}, ME)
    rec = db.get_one({"type": "cell", "id": "c"})
    assert rec["exec_count"] == 3 and isinstance(rec["exec_count"], int)
    assert rec["metadata"] == {"w": 640, "r": 0.5}
    rec["metadata"]["w"] = 1  # a copy: the table is unchanged
    assert db.get_one({"type": "cell", "id": "c"})["metadata"]["w"] == 640


def whole_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The records read whole from the document from now on."""
    from jupyter_cocalc_sync.sync import table as table_module

    reads: list[object] = []
    read_whole = table_module.checked_map_from_crdt
    monkeypatch.setattr(
        table_module,
        "checked_map_from_crdt",
        lambda value: reads.append(value) or read_whole(value),
    )
    return reads


def test_typing_keeps_a_cached_record_and_reads_only_the_text_again(monkeypatch):
    db = make_db()
    outputs = {str(i): {"output_type": "stream", "text": "out"} for i in range(20)}
    db.set({"type": "cell", "id": "c", "input": "x", "pos": 0, "output": outputs}, ME)
    db.commit(ME)
    held = db.peek(("cell", "c"))  # cached now
    peer = make_db()
    peer.apply_update(db.get_update(), PEER)
    reads = whole_reads(monkeypatch)
    for typed in ("x ", "x =", "x = 1"):  # a peer types, the table gets its updates
        peer.set({"type": "cell", "id": "c", "input": typed}, PEER)
        peer.commit(PEER)
        db.apply_update(peer.get_update(db.get_state()), PEER)
        assert db.peek(("cell", "c"))["input"] == typed
    assert reads == []  # the record with its twenty outputs was not read again
    assert held["input"] == "x"  # a record read before is what it was when read
    assert db.get_one({"type": "cell", "id": "c"})["output"] == outputs


def test_a_peers_plain_fields_patch_a_cached_record_without_reading_it_again(monkeypatch):
    """A peer's run request sets a cell's state: the cell with its outputs is not decoded
    again for it; what the cached read then says is what the document says."""
    db = make_db()
    outputs = {str(i): {"output_type": "stream", "text": "out"} for i in range(20)}
    db.set({"type": "cell", "id": "c", "input": "x", "pos": 0, "state": "idle"}, ME)
    db.set({"type": "cell", "id": "c", "output": outputs, "flag": True, "n": 1}, ME)
    db.commit(ME)
    held = db.peek(("cell", "c"))  # cached now
    peer = make_db()
    peer.apply_update(db.get_update(), PEER)
    reads = whole_reads(monkeypatch)
    changes = [
        {"state": "start", "input": "x = 1"},  # a run request: its state, its text typed
        {"pos": 2.5, "flag": 1, "n": True},  # (True is not 1, nor 1 True)
        {"pos": 3.0, "state": None},
    ]
    for fields in changes:
        peer.set({"type": "cell", "id": "c", **fields}, PEER)
        peer.commit(PEER)
        db.apply_update(peer.get_update(db.get_state()), PEER)
        cached = db.peek(("cell", "c"))
        assert cached == checked_map_from_crdt(db.record_map(("cell", "c")))
    with db.transaction(PEER):  # a field removed
        record = db.record_map(("cell", "c"))
        assert record is not None
        del record["flag"]
    db.peek(("cell", "c"))
    assert reads == []  # the record with its twenty outputs was not read again
    assert db.peek(("cell", "c")) == {
        "type": "cell",
        "id": "c",
        "input": "x = 1",
        "pos": 3,
        "n": True,
        "output": outputs,
    }
    assert isinstance(db.peek(("cell", "c"))["pos"], int)
    assert held["state"] == "idle"  # a record read before is what it was when read


def test_a_change_besides_typing_reads_the_record_again():
    db = make_db()
    db.set({"type": "cell", "id": "c", "input": "x", "pos": 0}, ME)
    db.commit(ME)
    db.peek(("cell", "c"))
    record = db.record_map(("cell", "c"))
    with db.transaction(ME):  # typing and another field in one transaction
        text = record["input"]
        text += "y"
        db.set({"type": "cell", "id": "c", "pos": 5}, ME)
    db.commit(ME)
    assert db.peek(("cell", "c")) == {"type": "cell", "id": "c", "input": "xy", "pos": 5}
    with db.transaction(ME):  # typing, then the text replaced by another
        text = record["input"]
        text += "z"
        record["input"] = Text("new")
    db.commit(ME)
    assert db.peek(("cell", "c"))["input"] == "new"


def test_a_cached_record_is_read_without_the_document(monkeypatch):
    db = make_db()
    db.set({"type": "cell", "id": "c", "input": "x", "pos": 0}, ME)
    db.commit(ME)
    assert db.peek(("cell", "c"))["input"] == "x"  # cached now
    reads: list[str] = []
    read = Map.get
    monkeypatch.setattr(Map, "get", lambda self, key, *a: reads.append(key) or read(self, key, *a))
    assert db.peek(("cell", "c"))["input"] == "x"
    assert db.get_one({"type": "cell", "id": "c"})["pos"] == 0
    assert reads == []
    db.set({"type": "cell", "id": "c", "pos": 1}, ME)  # a change drops the cached record
    assert db.peek(("cell", "c"))["pos"] == 1


def test_a_cached_record_deleted_in_a_transaction_is_gone_within_it():
    db = make_db()
    db.set({"type": "cell", "id": "c", "input": "x"}, ME)
    db.peek(("cell", "c"))
    with db.transaction(ME):  # (the table hears of the delete when the transaction ends)
        db.delete({"type": "cell", "id": "c"}, ME)
        assert db.peek(("cell", "c")) is None
        assert db.get_one({"type": "cell", "id": "c"}) is None
        assert not db.has(("cell", "c"))
    assert db.peek(("cell", "c")) is None


def test_a_cached_record_typed_in_is_read_from_its_text_alone(monkeypatch):
    db, peer = make_db(), make_db()
    db.set({"type": "cell", "id": "c", "input": "x", "pos": 0}, ME)
    db.commit(ME)
    peer.apply_update(db.get_update(), PEER)
    db.peek(("cell", "c"))  # cached now
    peer.set({"type": "cell", "id": "c", "input": "x = 1"}, PEER)
    peer.commit(PEER)
    db.apply_update(peer.get_update(db.get_state()), PEER)
    reads: list[str] = []
    read = Map.get
    monkeypatch.setattr(Map, "get", lambda self, key, *a: reads.append(key) or read(self, key, *a))
    assert db.peek(("cell", "c")) == {"type": "cell", "id": "c", "input": "x = 1", "pos": 0}
    assert reads == []


def map_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys read from any ``Map`` of a document from now on."""
    reads: list[str] = []
    read = Map.get
    monkeypatch.setattr(Map, "get", lambda self, key, *a: reads.append(key) or read(self, key, *a))
    return reads


def cached_cell(db: SyncDB) -> dict[str, object]:
    """A cell that ran (its state, count, trust, an output), read once: cached."""
    stdout = {"output_type": "stream", "name": "stdout", "text": "a\n"}
    db.set(
        {
            "type": "cell",
            "id": "c",
            "input": "print('a')",
            "state": "idle",
            "exec_count": 1,
            "end": 5,
            "metadata": {"trusted": True},
            "output": {"0": stdout},
        },
        ME,
    )
    db.commit(ME)
    assert db.peek(("cell", "c")) is not None
    return stdout


def test_a_write_to_a_cached_record_reads_only_the_map_it_writes_entries_into(monkeypatch):
    db = make_db()
    stdout = cached_cell(db)
    reads = map_reads(monkeypatch)
    result = {"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {}}
    db.set(
        {
            "type": "cell",
            "id": "c",
            "state": "busy",
            "exec_count": 2,
            "end": None,
            "metadata": {"trusted": True},
            "output": {"0": stdout, "1": result},
        },
        ME,
    )
    assert reads == ['["cell","c"]', "output"]  # (the record's map, its outputs' map)
    db.commit(ME)
    record = db.read(("cell", "c"))
    assert record is not None and "end" not in record
    assert record["state"] == "busy" and record["exec_count"] == 2
    assert record["metadata"] == {"trusted": True}
    assert record["output"] == {"0": stdout, "1": result}


def test_a_write_of_what_a_cached_record_holds_reads_nothing_and_changes_nothing(monkeypatch):
    db = make_db()
    stdout = cached_cell(db)
    reads = map_reads(monkeypatch)
    db.set({"type": "cell", "id": "c", "state": "idle", "pos": None, "output": {"0": stdout}}, ME)
    assert reads == [] and not db.has_uncommitted_changes


def test_a_record_written_twice_in_a_transaction_ends_as_the_second_write_says():
    """A write drops the record's cached read at once: the next write of it in the same
    transaction compares with what is stored, not with what was."""
    db = make_db()
    cached_cell(db)
    with db.transaction(ME):
        db.set({"type": "cell", "id": "c", "state": "busy", "exec_count": 2}, ME)
        db.set({"type": "cell", "id": "c", "state": "idle", "exec_count": 1}, ME)
        assert db.peek(("cell", "c"))["state"] == "idle"
    db.commit(ME)
    record = db.read(("cell", "c"))
    assert record is not None and record["state"] == "idle" and record["exec_count"] == 1


def test_a_map_column_written_to_replace_keeps_the_same_entries_and_drops_the_rest():
    db = make_db()
    stdout = cached_cell(db)
    db.set({"type": "cell", "id": "c", "output": {"1": stdout}}, ME)
    db.commit(ME)
    changes: list[RecordChange] = []
    db.on_change(lambda event: changes.extend(event.changes.values()))
    stderr = {"output_type": "stream", "name": "stderr", "text": "b\n"}
    outputs = {"0": stdout, "2": stderr}
    db.set({"type": "cell", "id": "c", "output": outputs}, ME, replace=["output"])
    db.commit(ME)
    assert db.read(("cell", "c"))["output"] == outputs
    (change,) = changes
    assert change.replaced == set() and change.entries == {"output": {"1", "2"}}


@pytest.mark.parametrize(
    ("text", "in_place"),
    [("a\nb\n", True), ("other\n", False)],
    ids=["grown: appended", "another: made anew"],
)
def test_a_stream_written_to_replace_grows_in_place_or_is_made_anew(text, in_place):
    """A run's first output where the last run's was (the outputs written to replace): the
    same stream with more text is an append to its text; another text is a new entry, not an
    edit of the old text into it (no diff of two unrelated outputs on the run's path)."""
    db = make_db()
    stdout = cached_cell(db)  # (its output "0": stdout "a\n")
    outputs = db.record_map(("cell", "c"))["output"]
    events: list[tuple[str, object]] = []
    outputs.observe_deep(
        lambda evs: events.extend((type(e).__name__, e.path) for e in evs)  # type: ignore[attr-defined]
    )
    new = {**stdout, "text": text}
    db.set({"type": "cell", "id": "c", "output": {"0": new}}, ME, replace=["output"])
    db.commit(ME)
    assert db.read(("cell", "c"))["output"] == {"0": new}
    assert events == ([("TextEvent", ["0", "text"])] if in_place else [("MapEvent", [])])


def test_a_cached_record_the_table_writes_into_stays_cached_as_it_reads_back(monkeypatch):
    """What ``set`` wrote into a cached record is its cached read once the change is over
    (the runner writes a cell's start, outputs and end, and the kernel's state, without
    reading them back), as the document has it: integral numbers as ints, lists."""
    db = make_db()
    stdout = cached_cell(db)
    reads = whole_reads(monkeypatch)
    with db.transaction(ME):
        db.set({"type": "cell", "id": "c", "state": "busy", "exec_count": 2.0, "end": None}, ME)
        db.set(
            {
                "type": "cell",
                "id": "c",
                "metadata": {"tags": ("a",), "trusted": None},
                "output": {"1": {"output_type": "stream", "name": "stderr", "text": "b"}},
                "input": "print('b')",
            },
            ME,
            replace=["output"],
        )
    db.commit(ME)
    db.set({"type": "settings", "id": "main", "kernel_state": "idle"}, ME)  # (another record)
    db.commit(ME)
    cached = db.peek(("cell", "c"))
    assert reads == []
    assert cached == checked_map_from_crdt(db.record_map(("cell", "c")))
    assert cached["exec_count"] == 2 and isinstance(cached["exec_count"], int)
    assert cached["metadata"] == {"tags": ["a"]} and "end" not in cached
    assert cached["output"] == {"1": {"output_type": "stream", "name": "stderr", "text": "b"}}
    assert stdout not in cached["output"].values()


def test_a_record_changed_beside_the_tables_writes_is_read_again():
    """A change that is not all the table's writes (code that edits the record's map
    directly in the same transaction, held from before or asked for since) drops the cached
    record: it is read again."""
    db = make_db()
    cached_cell(db)
    record = db.record_map(("cell", "c"))
    assert record is not None
    for pos, edit in (
        (3, lambda: record.__setitem__("state", "run")),
        (4, lambda: record.__setitem__("input", Text("new"))),
        (5, lambda: db.record_map(("cell", "c")).__setitem__("pos", 6)),  # (a field it wrote)
    ):
        db.peek(("cell", "c"))
        with db.transaction(ME):
            db.set({"type": "cell", "id": "c", "pos": pos}, ME)
            edit()
        db.commit(ME)
        assert db.peek(("cell", "c")) == checked_map_from_crdt(record)
    assert db.peek(("cell", "c"))["state"] == "run"
    assert db.peek(("cell", "c"))["input"] == "new" and db.peek(("cell", "c"))["pos"] == 6


def test_a_record_whose_map_was_handed_out_is_written_by_what_the_document_holds():
    """Code given a record's map may change it before the table hears of it (at the end of
    the transaction): a write of the record in that transaction compares with the
    document, not with the cached read."""
    db = make_db()
    cached_cell(db)
    with db.transaction(ME):
        record = db.record_map(("cell", "c"))
        assert record is not None
        record["state"] = "busy"
        db.set({"type": "cell", "id": "c", "state": "idle"}, ME)
    db.commit(ME)
    assert db.peek(("cell", "c"))["state"] == "idle" == checked_map_from_crdt(record)["state"]
