"""``UpdateGuard``: the shadow copy is made when a peer first writes, not when a document is
served, follows the document's own changes lazily (in a later loop turn, or as of the next
check), applies a peer's update once (not again when the document applies it), and still
refuses a bad update once made; typing into a text is checked without reading the whole record
or cell."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Text

from jupyter_cocalc_sync.errors import InvalidRecordError
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import SERVER
from jupyter_cocalc_sync.sync.guard import RecordChecker, UpdateGuard, table_guard
from jupyter_cocalc_sync.sync.table import SyncDB
from jupyter_cocalc_sync.ynotebook import checks
from jupyter_cocalc_sync.ynotebook.checks import check_cell, ynotebook_guard


def test_a_document_only_read_has_no_shadow_copy() -> None:
    db = notebook_syncdb()
    db.set({"type": "cell", "id": "a", "input": "x = 1"}, SERVER)
    db.commit(SERVER)
    guard = table_guard(db)
    guard.check(Doc().get_update())  # a reader's first sync: its document is empty
    assert guard.shadow is None
    db.set({"type": "cell", "id": "a", "input": "x = 2"}, SERVER)
    db.commit(SERVER)
    assert guard.shadow is None


def test_the_shadow_made_on_the_first_write_follows_the_document_and_refuses_bad_updates() -> None:
    db = notebook_syncdb()
    db.set({"type": "cell", "id": "a", "input": "x = 1"}, SERVER)
    db.commit(SERVER)
    guard = table_guard(db)
    peer = notebook_syncdb()
    peer.doc.apply_update(db.doc.get_update())
    before = peer.doc.get_state()
    peer.set({"type": "cell", "id": "b", "input": "y"}, SERVER)
    peer.commit(SERVER)
    good = peer.doc.get_update(before)
    guard.check(good)
    db.doc.apply_update(good)
    assert guard.shadow is not None
    # the server's own changes reach the shadow too: all at once, before the next check
    for n in range(3):
        db.set({"type": "cell", "id": "a", "input": f"x = {n}"}, SERVER)
        db.commit(SERVER)
    assert guard.shadow.get_state() != db.doc.get_state()
    before = peer.doc.get_state()
    peer.doc.apply_update(db.doc.get_update(before))
    # (a peer's edit of the text the server changed last: checked against that text)
    typed = _typed(peer, '["cell","a"]', "input", "!")
    guard.check(typed)
    db.doc.apply_update(typed)
    assert guard.shadow.get_state() == db.doc.get_state()
    assert db.get_one({"type": "cell", "id": "a"})["input"] == "x = 2!"
    # a record that is not a map, from a peer: refused, and the document is untouched
    before = peer.doc.get_state()
    peer.doc.get("records", type=Map)['["cell","c"]'] = "not a map"
    with pytest.raises(InvalidRecordError):
        guard.check(peer.doc.get_update(before))


def _shadow_applies(guard: UpdateGuard) -> list[bytes]:
    """The updates the guard applies to its shadow from now on (an update the shadow has
    already makes no transaction of its own: the calls are counted)."""
    shadow = guard.shadow
    assert shadow is not None
    applied: list[bytes] = []
    apply_update = shadow.apply_update

    def counted(update: bytes) -> None:
        applied.append(update)
        apply_update(update)

    shadow.apply_update = counted  # type: ignore[method-assign]
    return applied


def _typed_once() -> tuple[SyncDB, UpdateGuard, SyncDB]:
    """A table whose guard has checked, and which has applied, a peer's first keystroke; the
    peer."""
    db = notebook_syncdb()
    db.set({"type": "cell", "id": "a", "input": "x"}, SERVER)
    db.commit(SERVER)
    guard = table_guard(db)
    peer = _peer_of(db)
    first = _typed(peer, '["cell","a"]', "input", "1")
    guard.check(first)
    db.doc.apply_update(first)
    return db, guard, peer


def test_a_peers_update_reaches_the_shadow_once() -> None:
    """The document's transaction that applies a checked update is not applied to the shadow
    again: a keystroke costs the shadow one apply, on the check."""
    db, guard, peer = _typed_once()
    applied = _shadow_applies(guard)
    for text in "234":
        typed = _typed(peer, '["cell","a"]', "input", text)
        guard.check(typed)
        db.doc.apply_update(typed)
    assert len(applied) == 3
    assert guard.shadow is not None and guard.shadow.get_state() == db.doc.get_state()
    assert db.get_one({"type": "cell", "id": "a"})["input"] == "x1234"


async def test_the_servers_own_changes_reach_the_shadow_in_a_later_loop_turn() -> None:
    """Off the path of the peer's next update: its check applies that update alone."""
    db, guard, peer = _typed_once()
    for n in range(3):  # (a run's outputs: a transaction each, in one loop turn)
        db.set({"type": "cell", "id": "a", "output": {"0": {"n": n}}}, SERVER)
        db.commit(SERVER)
    applied = _shadow_applies(guard)
    assert guard.shadow is not None and guard.shadow.get_state() != db.doc.get_state()
    next_turn = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(next_turn.set_result, None)
    await next_turn
    assert len(applied) == 1  # (merged)
    assert guard.shadow.get_state() == db.doc.get_state()
    before = peer.doc.get_state()
    peer.doc.apply_update(db.doc.get_update(before))
    typed = _typed(peer, '["cell","a"]', "input", "2")
    guard.check(typed)
    assert applied[1:] == [typed]  # (nothing else to catch up with)


def _peer_of(db: SyncDB) -> SyncDB:
    peer = SyncDB(db.primary_keys, db.string_cols, map_cols=db.map_cols)
    peer.doc.apply_update(db.doc.get_update())
    return peer


def _typed(peer: SyncDB, key: str, column: str, text: str) -> bytes:
    """A peer's update that appends ``text`` to the text in ``column`` of record ``key``."""
    before = peer.doc.get_state()
    field = peer.doc.get("records", type=Map)[key][column]
    assert isinstance(field, Text)
    field += text
    return peer.doc.get_update(before)


def _cell_with_outputs_watched(monkeypatch) -> tuple[SyncDB, UpdateGuard, SyncDB, list[str]]:
    """A table with one cell of fifty outputs, its guard, a peer of it, and the list of the
    records the guard checks whole from now on."""
    db = notebook_syncdb()
    outputs = {str(i): {"output_type": "stream", "text": "out" * 100} for i in range(50)}
    db.set({"type": "cell", "id": "a", "input": "x = 1", "output": outputs}, SERVER)
    db.commit(SERVER)
    guard = table_guard(db)
    guard.check(Doc().get_update())
    whole_records: list[str] = []
    check_record = RecordChecker._check_record
    monkeypatch.setattr(
        RecordChecker,
        "_check_record",
        lambda self, encoded, value: (
            whole_records.append(encoded) or check_record(self, encoded, value)
        ),
    )
    peer = _peer_of(db)
    return db, guard, peer, whole_records


def test_typing_into_a_text_column_checks_that_column_alone(monkeypatch) -> None:
    _, guard, peer, whole_records = _cell_with_outputs_watched(monkeypatch)
    guard.check(_typed(peer, '["cell","a"]', "input", " + 1"))
    assert whole_records == []  # the record's fifty outputs were not read
    before = peer.doc.get_state()
    peer.doc.get("records", type=Map)['["cell","a"]']["output"]["0"] = {"output_type": "x"}
    guard.check(peer.doc.get_update(before))
    assert whole_records == ['["cell","a"]']


def test_setting_fields_of_a_record_checks_those_fields_alone(monkeypatch) -> None:
    """A client asking for a run sets the cell's state: the cell's outputs are not read. What
    is set is still checked as the whole record would be."""
    db, guard, peer, whole_records = _cell_with_outputs_watched(monkeypatch)
    record = peer.doc.get("records", type=Map)['["cell","a"]']

    def update(change: Callable[[], None]) -> bytes:
        before = peer.doc.get_state()
        change()
        return peer.doc.get_update(before)

    guard.check(update(lambda: peer.set({"type": "cell", "id": "a", "state": "start"}, SERVER)))
    db.doc.apply_update(peer.doc.get_update(db.doc.get_state()))
    assert whole_records == []
    assert db.get_one({"type": "cell", "id": "a"})["state"] == "start"
    refused: list[Callable[[], object]] = [
        lambda: record.__setitem__("state", "bogus"),  # not a state
        lambda: record.__setitem__("input", "a string, not a text"),
        lambda: record.__setitem__("output", {"0": "not a message"}),  # not a map
        lambda: record.__setitem__("exec_count", 1.5),
    ]
    for change in refused:
        peer = _peer_of(db)
        record = peer.doc.get("records", type=Map)['["cell","a"]']
        with pytest.raises(InvalidRecordError):
            guard.check(update(change))
    assert whole_records == []
    # a key field set: the whole record is checked (its key no longer matches)
    peer = _peer_of(db)
    record = peer.doc.get("records", type=Map)['["cell","a"]']
    with pytest.raises(InvalidRecordError, match="do not match its key"):
        guard.check(update(lambda: record.__setitem__("id", "b")))
    assert whole_records == ['["cell","a"]']


def test_typing_into_a_text_column_is_still_validated() -> None:
    def validate(record) -> None:
        if record.get("state") not in (None, "on", "off"):
            raise InvalidRecordError("state must be on or off")

    db = SyncDB(("id",), ("state",), validate=validate)
    db.set({"id": "a", "state": "on"}, SERVER)
    db.commit(SERVER)
    guard = table_guard(db)
    peer = _peer_of(db)
    with pytest.raises(InvalidRecordError, match="on or off"):
        guard.check(_typed(peer, '["a"]', "state", "!"))


def test_typing_into_a_cell_source_checks_no_cell_but_other_texts_are_checked(
    monkeypatch,
) -> None:
    server = YNotebook(Doc())
    server.append_cell({"cell_type": "code", "id": "c1", "source": "x = 1"})
    guard = ynotebook_guard(server.ydoc)
    checked: list[int] = []
    monkeypatch.setattr(
        checks, "check_cell", lambda ycell, index: checked.append(index) or check_cell(ycell, index)
    )
    peer = YNotebook(Doc())
    peer.ydoc.apply_update(server.ydoc.get_update())
    before = peer.ydoc.get_state()
    source = peer.ycells[0]["source"]
    source += " + 1"  # (typing: the Text itself, not a new one in its place)
    guard.check(peer.ydoc.get_update(before))
    assert checked == []
    # a text in another field of the cell: the cell is checked (an id must not become empty)
    before = peer.ydoc.get_state()
    peer.ycells[0]["id"] = Text("c1")
    update = peer.ydoc.get_update(before)
    guard.check(update)
    server.ydoc.apply_update(update)
    assert checked == [0]
    before = peer.ydoc.get_state()
    del peer.ycells[0]["id"][0:2]
    with pytest.raises(InvalidRecordError, match="id must be a non-empty string"):
        guard.check(peer.ydoc.get_update(before))
