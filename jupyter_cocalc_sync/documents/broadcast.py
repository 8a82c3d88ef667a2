"""``Broadcast``: what a notebook's clients see, and when — never before the change log has it.

The notebook's rooms (``syncdb`` for SyncDB clients, ``notebook`` for JupyterLab) are the only
way out of the server, and every update reaches them through here:

* a **table update** is handed to the ``syncdb`` room with the future of its own log write
  (``LoggedTable.on_logged``); the room sends it once that write is durable;
* a **YNotebook update** is made while the table change it shows is being made — before that
  change is committed and logged (runner outputs, REST), or before a JupyterLab edit is
  translated into the table — so it is *held* until the next log write (which holds the
  change), or, when the table has nothing uncommitted, until the latest write is durable. It is
  then written to the YNotebook's own log (in the same group commit) and handed to the
  ``notebook`` room with both writes, to be sent once both are durable.

A peer's update (a keystroke) is the latency path: once it is applied, what it queued in the
log is written at once, in that call, when the store can write it inline
(``_apply_then_write``); what it asked of the server that no client sees goes first
(``on_peer_durable``: a run's execute request). The first such update of a turn of the event
loop is sent at once; the others of that turn are sent in the next, merged (under load, many
peers' keystrokes arrive in one turn: each peer gets two messages for all of them, not one per
keystroke).
Otherwise the log writes it on the next loop turn as it does every other change, and the
rooms send once they hear it is durable.

A write that fails is never sent: while the store refuses a notebook's writes its clients are
closed (1011 ``store_unavailable``, they may retry), and no new client joins.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from ..errors_seen import count_error
from ..origin import Origin
from ..store import LoggedTable
from ..store.projections import ProjectionLog
from ..sync.guard import table_guard
from ..transport.room import INTERNAL_ERROR, ApplyUpdate, RawHandler, Room
from ..ynotebook.checks import ynotebook_guard
from ..ynotebook.projection import YNotebookProjection

log = logging.getLogger(__name__)

#: the rooms of a notebook
ROOM_KINDS = ("syncdb", "notebook")


class Broadcast:
    """Hands one notebook's updates to its rooms once they are durable (module docstring)."""

    def __init__(
        self,
        table: LoggedTable,
        projection_log: ProjectionLog,
        *,
        on_raw: RawHandler | None = None,
    ) -> None:
        self.table = table
        self.db = table.db
        self.file_id = table.doc_id
        self.projection_log = projection_log
        self._on_raw = on_raw
        self.rooms: dict[str, Room] = {}
        self._projection: YNotebookProjection | None = None
        #: a new YNotebook's state vector and first version (the updates that made it), until
        #: its room is made
        self._first_projection_update: tuple[bytes, list[bytes]] | None = None
        #: YNotebook updates not yet handed to the room: each waits for the log write of the
        #: table change it shows (``_release_projection``)
        self._held: list[tuple[bytes, Origin]] = []
        self._projection_logged: asyncio.Future[int] | None = None  # its latest log write
        self._projection_recordings: list[list[asyncio.Future[int]]] = []
        self._settle_scheduled = False
        #: a peer's update was sent at once in this loop turn (``_apply_then_write``)
        self._sent_at_once = False
        #: told when a peer's update is durable, before it is sent (``on_peer_durable``)
        self._peer_durable: list[Callable[[], None]] = []
        #: the server's awareness state in the notebook's rooms (kernel usage, run progress)
        self.server_state: dict[str, Any] | None = None
        self._unsubscribe: list[Callable[[], None]] = [
            table.on_logged(self._on_logged),
            table.changelog.watch(self.file_id, self._write_status),
        ]

    # -- the YNotebook ----------------------------------------------------------------------

    def follow(self, projection: YNotebookProjection, *, new: bool, unlogged: int = 0) -> None:
        """Broadcast the updates of the notebook's YNotebook (``new``: not restored from its
        log, so its first version, the whole of it, is logged now, as the updates its build
        made, but the first ``unlogged``, which the store has as its base, ``store/bases.py``;
        the same bytes answer its first client's sync: encoding a big notebook again
        costs)."""
        if new:
            pieces = projection.take_first_version() or [projection.ydoc.get_update()]
            for piece in pieces[unlogged:]:  # (one group commit)
                self._projection_logged = self.projection_log.append(self.file_id, piece)
            self._first_projection_update = (projection.ydoc.get_state(), pieces)
        self._projection = projection
        projection.on_update(self._hold_projection_update)

    def record_projection_writes(self) -> list[asyncio.Future[int]]:
        """A list that collects the YNotebook's log writes until ``stop_recording`` (a run
        squashes the versions it made the YNotebook go through, as it does the table's)."""
        recording: list[asyncio.Future[int]] = []
        self._projection_recordings.append(recording)
        return recording

    def stop_recording(self, recording: list[asyncio.Future[int]]) -> None:
        if recording in self._projection_recordings:
            self._projection_recordings.remove(recording)

    # -- durability before visibility -------------------------------------------------------

    def _on_logged(self, update: bytes, origin: Origin, durable: asyncio.Future[int]) -> None:
        room = self.rooms.get("syncdb")
        if room is not None:
            room.publish(update, origin, durable)
        if self._held and not self.db.has_uncommitted_changes:
            self._release_projection(durable)

    def _hold_projection_update(self, update: bytes, origin: Origin) -> None:
        self._held.append((update, origin))
        # the first version is no longer the whole YNotebook (a deletion alone does not change
        # the state vector the room compares)
        self._first_projection_update = None
        room = self.rooms.get("notebook")
        if room is not None:
            room.withdraw_whole_update()
        if not self._settle_scheduled:
            self._settle_scheduled = True
            asyncio.get_running_loop().call_soon(self._settle)

    def _settle(self) -> None:
        self._settle_scheduled = False
        if self._held and not self.db.has_uncommitted_changes:
            self._release_projection(self.table.barrier())

    def _release_projection(self, durable: asyncio.Future[int] | None) -> None:
        held, self._held = self._held, []
        room = self.rooms.get("notebook")
        for update, origin in held:
            # logged in the same group commit as the table change it shows
            logged = self._projection_logged = self.projection_log.append(self.file_id, update)
            for recording in self._projection_recordings:
                recording.append(logged)
            if room is not None:
                room.publish(update, origin, logged if durable is None else (durable, logged))

    def flush(self) -> None:
        """Hand out the YNotebook updates still held, with the latest table write (when the
        notebook closes: nothing may stay unlogged)."""
        self._release_projection(self.table.barrier())

    def _projection_barrier(self) -> asyncio.Future[Any] | None:
        """Once this is durable, the table and the YNotebook as they are now are on disk."""
        table, projection = self.table.barrier(), self._projection_logged
        if table is None or projection is None:
            return table or projection
        return _both(table, projection)

    def _write_status(self, error: BaseException | None) -> None:
        if error is None:
            return
        reason = json.dumps({"reason": "store_unavailable", "retry": True})
        for room in self.rooms.values():
            for peer in list(room.peers):
                peer.close(INTERNAL_ERROR, reason)

    # -- the rooms --------------------------------------------------------------------------

    def room(self, kind: str) -> Room:
        """The room of ``kind`` (``syncdb`` or ``notebook``), created on first use (the
        ``notebook`` room once the YNotebook is followed)."""
        self.table.check_writable()  # no new clients while changes cannot be saved
        room = self.rooms.get(kind)
        if room is not None:
            return room
        if kind == "syncdb":
            room = Room(
                f"syncdb:{self.file_id}",
                self.db.doc,
                apply_update=self._apply_then_write(self.db.apply_update),
                barrier=self.table.barrier,
                on_raw=self._on_raw,
                check_update=table_guard(self.db).check,  # a bad update changes nothing
            )
        elif kind == "notebook":
            projection = self._projection
            if projection is None:
                raise RuntimeError(f"the YNotebook of {self.file_id} is not loaded")
            room = Room(
                f"json:notebook:{self.file_id}",
                projection.ydoc,
                apply_update=self._apply_then_write(projection.apply_update),
                barrier=self._projection_barrier,
                on_raw=self._on_raw,
                check_update=ynotebook_guard(projection.ydoc).check,
                own_awareness_id=True,
            )
            if self._first_projection_update is not None:
                room.offer_whole_update(*self._first_projection_update)
                self._first_projection_update = None
        else:
            raise ValueError(f"unknown room kind {kind!r}")
        if self.server_state is not None:
            room.set_server_state(self.server_state)
        self.rooms[kind] = room
        return room

    def _apply_then_write(self, apply: ApplyUpdate) -> ApplyUpdate:
        """``apply``, then the log writes it queued made durable here and now when the store
        can, and sent at once if it is the first peer's update of this loop turn; the rest of
        the turn's are sent merged in the next (module docstring)."""

        def apply_update(update: bytes, origin: Origin) -> None:
            apply(update, origin)
            if not self.table.changelog.write_now():
                return
            if self._peer_durable and _succeeded(self.table.barrier()):
                for callback in list(self._peer_durable):
                    try:
                        callback()
                    except Exception as e:  # a bug of ours: the update is sent all the same
                        count_error(
                            "broadcast.peer_durable", e, "a peer-durable callback", logger=log
                        )
            if not self._sent_at_once:
                self._sent_at_once = True
                asyncio.get_running_loop().call_soon(self._next_turn)
                self._send_durable()

        return apply_update

    def send_now(self) -> None:
        """Write what the log has queued, and send the rooms what is durable, here and now
        when the store can write it here (the runner's commits: an output is sent in the call
        that wrote it, not once the log's flush task and the write's callbacks have run)."""
        if self.table.changelog.write_now():
            self._send_durable()

    def _send_durable(self) -> None:
        for room in self.rooms.values():
            room.send_durable()

    def on_peer_durable(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` each time a peer's update has just been written here and now,
        durable and not yet sent to any client (until the returned call): what it asked of
        the server that no client sees (the runner's execute request) goes first."""
        self._peer_durable.append(callback)
        return lambda: self._peer_durable.remove(callback)

    def _next_turn(self) -> None:
        self._sent_at_once = False

    def set_server_state(self, state: dict[str, Any] | None) -> None:
        """The server's awareness state in every room of the notebook: live for every client,
        never in the change log."""
        if state is None and self.server_state is None:
            return
        self.server_state = state
        for room in self.rooms.values():
            room.set_server_state(state)

    def close_rooms(self) -> None:
        for room in self.rooms.values():
            room.close()

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()


def _succeeded(write: asyncio.Future[Any] | None) -> bool:
    """Whether the log write ``write`` (the latest) is durable (``None``: nothing written)."""
    return write is None or (write.done() and not write.cancelled() and write.exception() is None)


def _both(first: asyncio.Future[Any], second: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """A future that resolves when both have (and fails if either fails). When one is done
    already, the other itself: callers that wait in a loop see a done future at once."""
    for future in (first, second):
        if future.done() and (future.cancelled() or future.exception() is not None):
            return future
    if first.done():
        return second
    if second.done():
        return first
    return asyncio.gather(first, second)
