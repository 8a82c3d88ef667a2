"""``Broadcast``: no client is handed an update before the log write holding it is durable."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers import eventually
from jupyter_ydoc import YNotebook
from pycrdt import Doc

from jupyter_cocalc_sync.documents.broadcast import Broadcast
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import SERVER, Origin
from jupyter_cocalc_sync.permissions import FULL
from jupyter_cocalc_sync.store import ChangeLog, LoggedTable, SQLiteWorker
from jupyter_cocalc_sync.store.projections import ProjectionLog
from jupyter_cocalc_sync.transport import protocol
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


async def test_no_room_sends_an_update_before_its_log_write_is_durable(tmp_path):
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

    # the store's thread is kept busy: nothing handed to it from now on is written
    store_written = threading.Event()
    blocked = asyncio.ensure_future(worker.run(lambda conn: store_written.wait(30)))

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

    broadcast.close_rooms()
    broadcast.close()
    projection.close()
    table.close()
    await changelog.settled()
    changelog.close()
    worker.close()
