"""``Replica``: a server extension's copy of a room's document, joined to the room as a peer.

jupyter_server_ydoc hands other extensions its rooms' documents to edit in place. Here the
room's document is a projection of the change log, so an extension gets a replica of it
instead: a ``jupyter_ydoc`` document of its own, in the room like any collaborator's. What the
extension changes in it is sent to the room as that peer's update — checked, applied, committed
under the extension's name (``extension:<package>``), logged, then sent to the others — and what
the others change reaches it once it is on disk, like any peer. Its awareness state is relayed
too (an AI assistant shows up in the collaborators panel).

A replica leaves its room when the extension has not used it for ``idle_timeout`` seconds (so the
notebook can close); an edit made to it after that joins the room again, and the y-websocket
handshake brings both sides up to date (the edit included).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from jupyter_ydoc import ydocs
from pycrdt import Awareness, Doc, TransactionEvent

from ..origin import Origin, OriginKind
from ..permissions import FULL
from ..transport import protocol

if TYPE_CHECKING:
    from jupyter_ydoc.ybasedoc import YBaseDoc

    from ..rooms.registry import Membership
    from ..transport.room import Peer

log = logging.getLogger(__name__)

#: ``join(peer)``: puts the peer in the room (opening its document) and says how to leave
Join = Callable[["Peer"], Awaitable["Membership"]]
#: what an update that changes nothing encodes to
EMPTY_UPDATE = Doc().get_update()
#: how long joining may wait for the room's state (its log write) before it is an error
SYNC_TIMEOUT = 60.0


class ReplicaPeer:
    """The replica as the room sees it: a peer with every right, named after the extension."""

    def __init__(self, replica: Replica) -> None:
        self._replica = replica
        #: an in-server extension's connection, with every right, under its name
        self.origin = Origin.of_peer(replica.author, FULL, OriginKind.EXTENSION)

    def send(self, data: bytes, *, first_sync: bool = False, last: bool = True) -> None:
        # (in process: nothing queues, so a first sync needs no exemption)
        self._replica.receive(data)

    def close(self, code: int, reason: str) -> None:
        self._replica.closed_by_room(code, reason)


class Replica:
    """An extension's replica of one room (module docstring)."""

    def __init__(
        self,
        room_id: str,
        file_type: str | None,
        author: str,
        join: Join,
        *,
        idle_timeout: float,
    ) -> None:
        self.room_id = room_id
        self.file_type = file_type
        self.file_format = room_id.split(":", 1)[0] if file_type is not None else None
        self.author = author
        self._join = join
        self.idle_timeout = idle_timeout
        self.ydoc: Doc[Any] = Doc()
        self.awareness = Awareness(self.ydoc)
        #: the ``jupyter_ydoc`` document (None for an awareness room)
        self.document: YBaseDoc | None = None
        if file_type is not None:
            self.document = ydocs.get(file_type, ydocs["file"])(self.ydoc, self.awareness)
        self.peer = ReplicaPeer(self)
        self._membership: Membership | None = None
        self._outbox: list[bytes] = []  # frames for the room while it is being joined
        self._synced = asyncio.Event()
        self._joining: asyncio.Task[None] | None = None
        self._from_room = False
        self._last_used = time.monotonic()
        self._idle_timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.ydoc.observe(self._on_local_update)
        self.awareness.observe(self._on_awareness)

    # -- the names jupyter_server_ydoc's rooms have ----------------------------------------

    @property
    def _document(self) -> YBaseDoc | None:
        """(``DocumentRoom._document``, which extensions read.)"""
        return self.document

    @property
    def attached(self) -> bool:
        return self._membership is not None

    # -- joining and leaving ---------------------------------------------------------------

    async def ready(self) -> None:
        """Join the room if needed, and wait until the replica has the room's (durable) state."""
        self.touch()
        if self._membership is None:
            await self._attach()
        async with asyncio.timeout(SYNC_TIMEOUT):
            await self._synced.wait()

    def _attach(self) -> asyncio.Task[None]:
        if self._joining is None or self._joining.done():
            self._joining = asyncio.get_running_loop().create_task(self._join_room())
        return self._joining

    async def _join_room(self) -> None:
        self._synced.clear()
        membership = await self._join(self.peer)
        if self.closed:
            membership.leave()
            return
        self._membership = membership
        outbox, self._outbox = self._outbox, []
        for frame in outbox:
            self._to_room(frame)
        # our state vector: the room answers with what we lack once that is on disk
        self._to_room(protocol.sync_message(protocol.SYNC_STEP1, self.ydoc.get_state()))
        if self.awareness.get_local_state():
            self._send_awareness()
        self._schedule_idle_check()

    def touch(self) -> None:
        self._last_used = time.monotonic()

    def _schedule_idle_check(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        wait = max(0.0, self._last_used + self.idle_timeout - time.monotonic())
        self._idle_timer = asyncio.get_running_loop().call_later(wait, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._membership is None:
            return
        if time.monotonic() - self._last_used >= self.idle_timeout:
            self._leave()
        else:
            self._schedule_idle_check()

    def _leave(self) -> None:
        membership, self._membership = self._membership, None
        self._synced.clear()
        if membership is not None:
            membership.leave()

    def closed_by_room(self, code: int, reason: str) -> None:
        """The room closed this peer (a refused update, the server stopping)."""
        log.warning(
            "%s: the room %s closed the extension's replica (%s %s)",
            self.author,
            self.room_id,
            code,
            reason,
        )
        self._membership = None
        self._synced.clear()
        self.closed = True

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._leave()
        self.closed = True

    # -- from the room ---------------------------------------------------------------------

    def receive(self, frame: bytes) -> None:
        message = protocol.decode(frame)
        if message.kind == protocol.AWARENESS:
            self.awareness.apply_awareness_update(message.payload, "room")
        elif message.kind == protocol.SYNC and message.sub == protocol.SYNC_STEP1:
            update = self.ydoc.get_update(message.payload)
            if update != EMPTY_UPDATE:
                self._to_room(protocol.sync_message(protocol.SYNC_STEP2, update))
        elif message.kind == protocol.SYNC:
            with self._applying_room_update():
                self.ydoc.apply_update(message.payload)
            if message.sub == protocol.SYNC_STEP2:
                self._synced.set()

    @contextmanager
    def _applying_room_update(self) -> Iterator[None]:
        self._from_room = True
        try:
            yield
        finally:
            self._from_room = False

    # -- to the room -----------------------------------------------------------------------

    def _on_local_update(self, event: TransactionEvent) -> None:
        if self._from_room:
            return
        self.touch()
        if self.closed:
            log.warning("%s edited a replica of %s it no longer has", self.author, self.room_id)
            return
        if self._membership is None:
            # joining again: the handshake sends the room this edit with the rest
            self._attach()
            return
        self._to_room(protocol.sync_message(protocol.SYNC_UPDATE, event.update))

    def _on_awareness(self, topic: str, change: tuple[dict[str, Any], Any]) -> None:
        if topic == "update" and change[1] == "local" and self._membership is not None:
            self._send_awareness()

    def _send_awareness(self) -> None:
        update = self.awareness.encode_awareness_update([self.ydoc.client_id])
        self._to_room(protocol.awareness_message(update))

    def _to_room(self, frame: bytes) -> None:
        membership = self._membership
        if membership is None:
            self._outbox.append(frame)
            return
        membership.room.receive(self.peer, frame)
