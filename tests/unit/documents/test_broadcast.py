"""``Broadcast``: no client is handed an update before the log write holding it is durable, and
a peer's update is handed to the others as soon as it is."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map

from jupyter_cocalc_sync.documents.broadcast import Broadcast
from jupyter_cocalc_sync.errors_seen import errors_seen
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import SERVER, Origin
from jupyter_cocalc_sync.permissions import FULL
from jupyter_cocalc_sync.store import ChangeLog, LoggedTable, SQLiteWorker
from jupyter_cocalc_sync.store.projections import ProjectionLog
from jupyter_cocalc_sync.sync.table import SyncDB
from jupyter_cocalc_sync.transport import protocol
from jupyter_cocalc_sync.transport.room import Room
from jupyter_cocalc_sync.ynotebook.projection import YNotebookProjection

#: event-loop turns a broken ordering gets to send an update that is not durable yet (the
#: room sends on the next turn once nothing holds an update back)
LOOP_TURNS = 20


@dataclass(eq=False)
class WatchingPeer:
    """A room peer that notes, for every update it is sent, whether the store had written
    everything handed to it by then."""

    origin: Origin
    durable: Callable[[], bool]
    updates: list[bytes] = field(default_factory=list)
    sent_before_durable: int = 0
    closed: tuple[int, str] | None = None

    def send(self, data: bytes) -> None:
        message = protocol.decode(data)
        if message.kind == protocol.SYNC and message.sub == protocol.SYNC_UPDATE:
            self.updates.append(message.payload)
            if not self.durable():
                self.sent_before_durable += 1

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


@dataclass
class Notebook:
    """A notebook's table and YNotebook on a store, and their ``Broadcast``."""

    worker: SQLiteWorker
    changelog: ChangeLog
    db: SyncDB
    table: LoggedTable
    projection: YNotebookProjection
    broadcast: Broadcast

    def written(self) -> bool:
        """Whether every log write of the table and the YNotebook so far is durable."""
        writes = (self.table.barrier(), self.broadcast._projection_barrier())
        return all(write is None or write.done() for write in writes)

    def table_written(self) -> bool:
        """Whether every log write of the table so far is durable."""
        last = self.table.barrier()
        return last is None or last.done()

    def typist_and_reader(self) -> tuple[Room, WatchingPeer, WatchingPeer]:
        """The syncdb room, with a peer that types and one that reads."""
        room = self.broadcast.room("syncdb")
        typist = WatchingPeer(Origin.of_peer("a", FULL), self.table_written)
        reader = WatchingPeer(Origin.of_peer("b", FULL), self.table_written)
        room.connect(typist)
        room.connect(reader)
        return room, typist, reader


@contextlib.asynccontextmanager
async def notebook(tmp_path: Path) -> AsyncIterator[Notebook]:
    """A notebook of one cell whose table and YNotebook are both on disk; closed after."""
    worker = SQLiteWorker(tmp_path / "log.db")
    changelog = ChangeLog(worker)
    await changelog.open()
    projection_log = ProjectionLog(changelog)
    db = notebook_syncdb()
    table = LoggedTable(db, changelog, "nb")
    db.set({"type": "cell", "id": "c", "input": "x", "pos": 0, "cell_type": "code"}, SERVER)
    await table.commit(SERVER)
    broadcast = Broadcast(table, projection_log)
    projection = YNotebookProjection(db, commit=table.commit)
    broadcast.follow(projection, new=True)
    await table.durable()
    await changelog.flushed()
    try:
        yield Notebook(worker, changelog, db, table, projection, broadcast)
    finally:
        broadcast.close_rooms()
        broadcast.flush()  # (as a notebook that closes: nothing held is left unlogged)
        broadcast.close()
        projection.close()
        table.close()
        await changelog.settled()
        changelog.close()
        worker.close()


async def block_store(worker: SQLiteWorker) -> tuple[threading.Event, asyncio.Future[Any]]:
    """Keep the store's thread busy: nothing handed to it is written until the event is set
    (the future: the blocking job, running when this returns)."""
    running, store_written = threading.Event(), threading.Event()

    def hold(conn: object) -> None:
        running.set()
        store_written.wait(30)

    blocked = asyncio.ensure_future(worker.run(hold))
    await asyncio.to_thread(running.wait, 30)
    return store_written, blocked


def client_edit(ydoc: Doc[Any], edit: Callable[[Doc[Any]], None]) -> bytes:
    """The update a client holding ``ydoc`` sends for ``edit`` (made on a copy of it)."""
    client: Doc[Any] = Doc()
    client.apply_update(ydoc.get_update())
    state = client.get_state()
    edit(client)
    return client.get_update(state)


def typed_into_cell_source(client: Doc[Any]) -> None:
    source = YNotebook(client).ycells[0]["source"]
    source.insert(len(source), "y")


def typed_into_cell_input(client: Doc[Any]) -> None:
    text = client.get("records", type=Map)[SyncDB.encode_key(("cell", "c"))]["input"]
    text.insert(len(text), "y")


async def test_no_room_sends_an_update_before_its_log_write_is_durable(tmp_path):
    async with notebook(tmp_path) as nb:
        await no_room_sends_an_update_before_its_log_write_is_durable(nb)


async def no_room_sends_an_update_before_its_log_write_is_durable(nb: Notebook) -> None:
    db, table, broadcast, projection = nb.db, nb.table, nb.broadcast, nb.projection
    store_written, blocked = await block_store(nb.worker)

    def durable() -> bool:
        last = table.barrier()
        return store_written.is_set() and (last is None or last.done())

    syncdb_peer = WatchingPeer(Origin.of_peer("s", FULL), durable)
    lab_peer = WatchingPeer(Origin.of_peer("l", FULL), durable)
    syncdb_room, notebook_room = broadcast.room("syncdb"), broadcast.room("notebook")
    syncdb_room.connect(syncdb_peer)
    notebook_room.connect(lab_peer)

    # the runner writes an output: a table update and the YNotebook update that shows it
    output = {"0": {"output_type": "stream", "name": "stdout", "text": "hello\n"}}
    db.set({"type": "cell", "id": "c", "output": output}, SERVER)
    table.commit(SERVER)
    try:
        for _ in range(LOOP_TURNS):
            await asyncio.sleep(0)  # (loop turns, not time: see LOOP_TURNS)
        assert syncdb_peer.updates == [] and lab_peer.updates == []
    finally:
        store_written.set()  # the write goes through: both rooms send
    await blocked
    await eventually(lambda: syncdb_peer.updates and lab_peer.updates)
    assert syncdb_peer.sent_before_durable == 0 and lab_peer.sent_before_durable == 0
    assert syncdb_peer.closed is None and lab_peer.closed is None
    client: Doc[Any] = Doc()
    client.apply_update(projection.ydoc.get_update())  # what JupyterLab got shows the output
    assert YNotebook(client).get()["cells"][0]["outputs"][0]["text"] == "hello\n"


@pytest.mark.parametrize(
    ("kind", "edit"), [("notebook", typed_into_cell_source), ("syncdb", typed_into_cell_input)]
)
async def test_a_turns_first_keystroke_is_sent_at_once_and_its_others_merged_in_the_next(
    tmp_path, kind, edit
):
    async with notebook(tmp_path) as nb:
        room = nb.broadcast.room(kind)

        # (a SyncDB edit's YNotebook update is logged a turn later: the table's write is the
        # one the syncdb room waits for)
        durable = nb.written if kind == "notebook" else nb.table_written
        typists = [WatchingPeer(Origin.of_peer(name, FULL), durable) for name in "acd"]
        reader = WatchingPeer(Origin.of_peer("b", FULL), durable)
        for peer in (*typists, reader):
            room.connect(peer)
        for typist in typists:  # (three peers' keystrokes in one turn of the loop)
            update = client_edit(room.doc, edit)
            room.receive(typist, protocol.sync_message(protocol.SYNC_UPDATE, update))
            assert durable()  # the log was written inline, in the call that applied it
            # the first sent in that call; the others wait for the turn's end
            assert len(reader.updates) == 1
        await asyncio.sleep(0)  # the next loop turn: the other two, as one message
        assert len(reader.updates) == 2 and reader.sent_before_durable == 0
        assert [len(typist.updates) for typist in typists] == [1, 2, 2]
        assert (nb.db.peek(("cell", "c")) or {})["input"] == "xyyy"


@pytest.mark.parametrize(
    ("kind", "edit"), [("notebook", typed_into_cell_source), ("syncdb", typed_into_cell_input)]
)
async def test_a_peers_update_waits_for_a_store_that_cannot_write_it_at_once(tmp_path, kind, edit):
    async with notebook(tmp_path) as nb:
        store_written, blocked = await block_store(nb.worker)
        room = nb.broadcast.room(kind)

        def durable() -> bool:
            return store_written.is_set() and nb.written()

        typist = WatchingPeer(Origin.of_peer("a", FULL), durable)
        reader = WatchingPeer(Origin.of_peer("b", FULL), durable)
        room.connect(typist)
        room.connect(reader)
        update = client_edit(room.doc, edit)
        room.receive(typist, protocol.sync_message(protocol.SYNC_UPDATE, update))
        try:
            for _ in range(LOOP_TURNS):
                await asyncio.sleep(0)  # (loop turns, not time: see LOOP_TURNS)
            assert reader.updates == []
        finally:
            store_written.set()
        await blocked
        await eventually(lambda: reader.updates)
        assert len(reader.updates) == 1 and reader.sent_before_durable == 0


async def test_what_a_peers_update_asked_for_goes_first_once_it_is_durable(tmp_path):
    """``on_peer_durable``: called in the call that applied the peer's update, once its log
    write is durable and before any client is sent it; not while the store cannot write it
    (then nothing is sent in that call either)."""
    async with notebook(tmp_path) as nb:
        room, typist, reader = nb.typist_and_reader()
        calls: list[tuple[bool, int]] = []
        stop = nb.broadcast.on_peer_durable(
            lambda: calls.append((nb.table_written(), len(reader.updates)))
        )
        update = client_edit(room.doc, typed_into_cell_input)
        room.receive(typist, protocol.sync_message(protocol.SYNC_UPDATE, update))
        assert calls == [(True, 0)] and len(reader.updates) == 1

        store_written, blocked = await block_store(nb.worker)
        try:
            update = client_edit(room.doc, typed_into_cell_input)
            room.receive(typist, protocol.sync_message(protocol.SYNC_UPDATE, update))
            assert calls == [(True, 0)] and len(reader.updates) == 1
        finally:
            store_written.set()
        await blocked
        await eventually(lambda: len(reader.updates) == 2)
        stop()
        for _ in range(LOOP_TURNS):
            await asyncio.sleep(0)  # (the turn of the keystroke sent at once is over)
        update = client_edit(room.doc, typed_into_cell_input)
        room.receive(typist, protocol.sync_message(protocol.SYNC_UPDATE, update))
        assert len(calls) == 1 and len(reader.updates) == 3


async def test_send_now_writes_and_sends_a_commit_in_the_call(tmp_path):
    """The runner's commit is written and sent in the call of ``send_now``, durable."""
    async with notebook(tmp_path) as nb:
        reader = WatchingPeer(Origin.of_peer("b", FULL), nb.table_written)
        nb.broadcast.room("syncdb").connect(reader)
        output = {"0": {"output_type": "stream", "name": "stdout", "text": "hello\n"}}
        nb.db.set({"type": "cell", "id": "c", "output": output}, SERVER)
        nb.table.commit(SERVER)
        assert reader.updates == []
        nb.broadcast.send_now()
        assert len(reader.updates) == 1 and reader.sent_before_durable == 0

        store_written, blocked = await block_store(nb.worker)
        try:  # a store that cannot write it here: sent once written, as every change
            nb.db.set({"type": "cell", "id": "c", "output": None}, SERVER)
            nb.table.commit(SERVER)
            nb.broadcast.send_now()
            assert len(reader.updates) == 1
        finally:
            store_written.set()
        await blocked
        await eventually(lambda: len(reader.updates) == 2)
        assert reader.sent_before_durable == 0


@pytest.mark.expect_errors(r"a peer-durable callback \[broadcast.peer_durable\]: RuntimeError")
async def test_a_failing_peer_durable_callback_does_not_hold_the_update_back(tmp_path):
    """A bug in what a peer's update asked for (the runner's request) is counted; the update
    is sent to the other clients all the same."""
    async with notebook(tmp_path) as nb:
        room, typist, reader = nb.typist_and_reader()

        def failing() -> None:
            raise RuntimeError("a bug")

        stop = nb.broadcast.on_peer_durable(failing)
        before = errors_seen().get("broadcast.peer_durable", 0)
        update = client_edit(room.doc, typed_into_cell_input)
        room.receive(typist, protocol.sync_message(protocol.SYNC_UPDATE, update))
        stop()
        assert len(reader.updates) == 1 and reader.sent_before_durable == 0
        assert errors_seen().get("broadcast.peer_durable", 0) == before + 1
        assert typist.closed is None
