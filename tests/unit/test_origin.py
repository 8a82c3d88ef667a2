"""``Origin``: who made a change goes along with the change, as an argument, to every listener."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import eventually
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc

from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import FILE, RUNNER, SERVER, STORE, Origin, OriginKind
from jupyter_cocalc_sync.permissions import READ_ONLY, Permissions
from jupyter_cocalc_sync.store import ChangeLog, LoggedTable, SQLiteWorker
from jupyter_cocalc_sync.sync.events import ChangeEvent
from jupyter_cocalc_sync.transport import protocol
from jupyter_cocalc_sync.transport.room import Room
from jupyter_cocalc_sync.ynotebook.projection import YNotebookProjection

ALICE = Origin.of_user("alice")


def test_the_history_author_is_derived_from_the_origin_in_one_place():
    assert ALICE.author == "alice"
    assert ALICE.running_for() == Origin(OriginKind.RUNNER, "alice")
    assert ALICE.running_for().author == "alice"  # a run is recorded under who asked
    assert RUNNER.running_for().author is None
    assert FILE.author == "file"
    assert SERVER.author is None and STORE.author is None


def test_each_room_connection_is_an_origin_of_its_own():
    first, second = Origin.of_peer("alice", READ_ONLY), Origin.of_peer("alice", READ_ONLY)
    assert first != second  # two tabs of one user
    assert first.connection is not None and second.connection is not None
    assert first.author == second.author == "alice"
    assert ALICE.connection is None


def test_a_change_reaches_every_listener_with_the_origin_it_was_made_with():
    a, b = notebook_syncdb(), notebook_syncdb()
    events: list[ChangeEvent] = []
    updates: list[Origin] = []
    a.on_change(events.append)
    a.on_update(lambda update, origin: updates.append(origin))
    a.set({"type": "cell", "id": "c", "input": "x", "pos": 0}, ALICE)
    assert events[-1].origin == ALICE and events[-1].local
    assert updates == []  # not before the commit
    a.commit(RUNNER)
    assert updates == [RUNNER]
    bob = Origin.of_peer("bob", Permissions(write=True, execute=False))
    b.on_change(events.append)
    b.on_update(lambda update, origin: updates.append(origin))
    b.apply_update(a.get_update(), bob)
    assert events[-1].origin == bob and not events[-1].local
    assert not events[-1].origin.permissions.execute
    assert updates[-1] == bob  # a peer's update is handed on at once


def test_one_transaction_has_one_origin():
    db = notebook_syncdb()
    with db.transaction(ALICE):
        db.set({"type": "cell", "id": "a", "input": "x", "pos": 0}, ALICE)
        with pytest.raises(ValueError, match="inside a transaction"):
            db.set({"type": "cell", "id": "b", "input": "y", "pos": 1}, SERVER)
    assert db.get_one({"type": "cell", "id": "b"}) is None


async def test_the_change_log_records_the_author_of_the_origin(tmp_path):
    log = ChangeLog(SQLiteWorker(tmp_path / "log.db"))
    await log.open()
    db = notebook_syncdb()
    table = LoggedTable(db, log, "nb")
    for origin in (ALICE, FILE, SERVER, ALICE.running_for()):
        db.set({"type": "cell", "id": "c", "input": repr(origin), "pos": 0}, origin)
        table.commit(origin)
    peer = notebook_syncdb()
    peer.set({"type": "cell", "id": "d", "input": "from a peer", "pos": 1}, SERVER)
    db.apply_update(peer.get_update(), Origin.of_peer("carol", READ_ONLY))
    db.apply_update(peer.get_update(), STORE)  # replayed from the log: not logged again
    await table.durable()
    assert [v.author for v in await log.versions("nb")] == ["alice", "file", None, "alice", "carol"]
    table.close()
    await log.settled()
    log.close()
    log.worker.close()


@dataclass(eq=False)
class RecordingPeer:
    """A room peer that keeps what the room sends it."""

    origin: Origin
    sent: list[bytes] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def _update(text: str) -> bytes:
    """A Yjs update that appends ``text`` to the array ``log``."""
    doc: Doc[Any] = Doc()
    doc.get("log", type=Array).append(text)
    return doc.get_update()


def _texts(peer: RecordingPeer) -> list[str]:
    """What the updates the room sent ``peer`` hold, merged in one document."""
    doc: Doc[Any] = Doc()
    for frame in peer.sent:
        message = protocol.decode(frame)
        if message.kind == protocol.SYNC and message.sub == protocol.SYNC_UPDATE:
            doc.apply_update(message.payload)
    return sorted(str(item) for item in doc.get("log", type=Array))


async def test_a_room_does_not_send_a_peer_its_own_update_back():
    doc: Doc[Any] = Doc()
    room = Room("r", doc)
    alice, bob = (RecordingPeer(Origin.of_peer(name, READ_ONLY)) for name in ("alice", "bob"))
    room.connect(alice)
    room.connect(bob)
    durable: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    room.publish(_update("from alice"), alice.origin, durable)
    room.publish(_update("from the server"), SERVER, durable)
    durable.set_result(1)
    await eventually(lambda: _texts(bob) == ["from alice", "from the server"])
    assert _texts(alice) == ["from the server"]
    assert alice.closed is None and bob.closed is None
    room.close()


async def test_a_jupyterlab_edit_is_committed_as_the_peer_and_handed_out_with_its_origin():
    db = notebook_syncdb()
    db.set({"type": "cell", "id": "c", "input": "x = 1", "pos": 0, "cell_type": "code"}, SERVER)
    db.commit(SERVER)
    committed: list[Origin] = []
    projection = YNotebookProjection(db, commit=lambda origin: committed.append(origin))
    handed_out: list[Origin] = []
    projection.on_update(lambda update, origin: handed_out.append(origin))
    # a JupyterLab client edits its copy of the YNotebook
    client: Doc[Any] = Doc()
    client.apply_update(projection.ydoc.get_update())
    before = client.get_state()
    source = YNotebook(client).ycells[0]["source"]
    source.insert(len(source), " + 1")
    alice = Origin.of_peer("alice", Permissions())
    projection.apply_update(client.get_update(before), alice)
    assert db.get_one({"type": "cell", "id": "c"})["input"] == "x = 1 + 1"
    assert committed == [alice]
    assert handed_out == [alice]
    projection.close()
