"""``UpdateGuard``: the shadow copy is made when a peer first writes, not when a document is
served, and it still refuses a bad update once made."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Map

from jupyter_cocalc_sync.errors import InvalidRecordError
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import SERVER
from jupyter_cocalc_sync.sync.guard import table_guard


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
    # the server's own change reaches the shadow too
    db.set({"type": "cell", "id": "a", "input": "x = 3"}, SERVER)
    db.commit(SERVER)
    assert guard.shadow.get_state() == db.doc.get_state()
    # a record that is not a map, from a peer: refused, and the document is untouched
    before = peer.doc.get_state()
    peer.doc.get("records", type=Map)['["cell","c"]'] = "not a map"
    with pytest.raises(InvalidRecordError):
        guard.check(peer.doc.get_update(before))
