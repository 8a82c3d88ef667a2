"""``Room``: one Yjs document served to y-websocket peers.

A room does not own its document: its owner applies peer updates (so it knows who made them)
and publishes every update the document emits together with the future of the log write that
holds it (or the futures of the log writes that hold it). The room sends an update only once
that write is durable, so no peer ever sees a change that a crash could take back; an update
whose write failed is never sent. What became durable in one turn of the event loop is sent
in the next, each peer getting one message for all of it (many peers' keystrokes under load);
an owner that has just made an update durable itself may have it sent at once
(``send_durable``).
Awareness (cursors, user names) is relayed, and a peer that leaves has its awareness states
removed for the others. The server has an awareness state of its own (kernel usage and run
progress), under the document's client id, and may keep entries under other client ids (one
per notebook kernel in JupyterLab's global awareness room); no peer may set either.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pycrdt import Awareness, Doc, merge_updates

from ..errors_seen import count_error
from ..origin import Origin
from . import protocol
from .protocol import Message, ProtocolError

log = logging.getLogger(__name__)


class Peer(Protocol):
    """One connected client (a websocket)."""

    @property
    def origin(self) -> Origin:
        """The origin of the client's changes: who it is, what it may do beyond reading (its
        document updates are dropped unless it may write), its connection."""

    def send(self, data: bytes, *, first_sync: bool = False, last: bool = True) -> None:
        """Queue ``data`` for the client; never blocks, never raises. ``first_sync``: part of
        the answer to the client's request for the whole document (as big as the document,
        so not a sign of a client falling behind); ``last``: its last part."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection."""


#: applies a peer's document update as the change of the peer's origin
ApplyUpdate = Callable[[bytes, Origin], None]
#: raises (and changes nothing) unless a peer's update may be applied
CheckUpdate = Callable[[bytes], None]
#: the owner's latest log write: once it is durable, everything in the document is
Barrier = Callable[[], "asyncio.Future[Any] | None"]
#: the log writes that hold an update: it may be sent once every one of them is durable
Durable = tuple["asyncio.Future[Any]", ...]
RawHandler = Callable[[Peer, Message], Awaitable[dict[str, Any] | None]]

#: awareness client ids one connection may hold (a JupyterLab tab uses one per document)
MAX_AWARENESS_CLIENTS = 8

#: what a peer's malformed message raises: a frame or update that does not decode (pycrdt's
#: ValueError, ``ProtocolError``), records the table refuses (``InvalidRecordError``), an
#: awareness state that is not JSON; anything else is a bug of the server, not of the peer
BAD_MESSAGE = (ValueError,)

#: the state vector of an empty document (a client that has nothing yet)
EMPTY_STATE = b"\x00"

#: websocket close codes
UNSUPPORTED_DATA = 1003
INVALID_PAYLOAD = 1007
INTERNAL_ERROR = 1011


class Room:
    """Serves ``doc`` to peers (see the module docstring)."""

    def __init__(
        self,
        name: str,
        doc: Doc[Any],
        *,
        apply_update: ApplyUpdate | None = None,
        barrier: Barrier | None = None,
        on_raw: RawHandler | None = None,
        awareness_only: bool = False,
        check_update: CheckUpdate | None = None,
        own_awareness_id: bool = False,
    ) -> None:
        self.name = name
        self.doc = doc
        self.peers: set[Peer] = set()
        self._apply = apply_update or (lambda update, origin: doc.apply_update(update))
        self._check_update = check_update
        self._barrier = barrier
        self._on_raw = on_raw
        self.awareness_only = awareness_only
        # ``own_awareness_id``: the server's awareness entry has a client id of its own, new
        # with each room, not the document's (a YNotebook restored from its base keeps its Yjs
        # client across restarts, and a client ignores an awareness clock that starts again
        # from 0 under an id it knows)
        self.awareness = Awareness(Doc() if own_awareness_id else doc)
        self._awareness_clients: dict[Peer, set[int]] = {}
        #: awareness client id -> the peer that announced it (only it may change it)
        self._awareness_owner: dict[int, Peer] = {}
        #: client ids of the entries the server keeps besides its own (``set_server_entry``)
        self._server_entries: set[int] = set()
        #: awareness entries dropped because they named another peer's client id
        self.refused_awareness = 0
        self._outbox: deque[tuple[bytes, Peer | None, Durable]] = deque()
        self._scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        #: document updates (and save requests) dropped because their peer may not write
        self.dropped_updates = 0
        #: the whole document as updates applied one after the other, with the state vector
        #: it was made at, for the next first sync (``offer_whole_update``)
        self._whole: tuple[bytes, list[bytes]] | None = None

    # -- peers ------------------------------------------------------------------------------

    def connect(self, peer: Peer) -> None:
        """Start serving ``peer``: ask for its state, show it the others' awareness."""
        self.peers.add(peer)
        self._awareness_clients[peer] = set()
        if not self.awareness_only:
            peer.send(protocol.sync_message(protocol.SYNC_STEP1, self.doc.get_state()))
        # the server's own state only once it has one (it starts as an empty object)
        states = [
            cid
            for cid, state in self.awareness.states.items()
            if cid != self.awareness.client_id or state
        ]
        if states:
            peer.send(protocol.awareness_message(self.awareness.encode_awareness_update(states)))

    def disconnect(self, peer: Peer) -> None:
        """Stop serving ``peer`` and tell the others its cursors are gone."""
        self.peers.discard(peer)
        clients = self._awareness_clients.pop(peer, set())
        for client_id in clients:
            self._awareness_owner.pop(client_id, None)
        gone = {
            cid: self.awareness.meta[cid]["clock"]
            for cid in clients
            if cid in self.awareness.states and cid in self.awareness.meta
        }
        if gone:
            removal = protocol.awareness_removal(gone)
            self.awareness.apply_awareness_update(removal, None)
            self._relay(protocol.awareness_message(removal), None)

    def set_server_state(self, state: dict[str, Any] | None) -> None:
        """Set the server's awareness state (None removes it) and send it to every peer.
        Setting it again renews it: clients drop states not renewed within 30 s."""
        self.awareness.set_local_state(state)
        update = self.awareness.encode_awareness_update([self.awareness.client_id])
        self._relay(protocol.awareness_message(update), None)

    def set_server_entry(self, client_id: int, state: dict[str, Any] | None) -> None:
        """Set (None: remove) an awareness entry the server keeps under ``client_id`` besides
        its own, and send it to every peer."""
        if state is None:
            self._server_entries.discard(client_id)
            if client_id not in self.awareness.states:
                return
        else:
            self._server_entries.add(client_id)
        meta = self.awareness.meta.get(client_id)
        clock = meta["clock"] + 1 if meta else 1  # an entry is taken when its clock grows
        value = "null" if state is None else json.dumps(state, separators=(",", ":"))
        update = protocol.encode_awareness([(client_id, clock, value)])
        self.awareness.apply_awareness_update(update, None)
        self._relay(protocol.awareness_message(update), None)

    def receive(self, peer: Peer, frame: bytes | str) -> None:
        """Handle one frame from ``peer``; a malformed frame closes that peer only."""
        if isinstance(frame, str):
            peer.close(UNSUPPORTED_DATA, "text frames are not part of the protocol")
            return
        try:
            message = protocol.decode(frame)
        except ProtocolError as e:
            peer.close(UNSUPPORTED_DATA, str(e)[:120])
            return
        try:
            self._handle(peer, message, frame)
        except BAD_MESSAGE as e:
            log.info("room %s: closing a peer after a bad message: %s", self.name, e)
            peer.close(INVALID_PAYLOAD, f"invalid message: {e}"[:120])
        except Exception as e:  # a bug of ours: the room and its other peers go on
            count_error("room.message", e, f"room {self.name}: a peer's message", logger=log)
            peer.close(INTERNAL_ERROR, "the server failed on this message")
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # pyo3's PanicException (pycrdt) is not an Exception
            count_error("room.crdt_panic", e, f"room {self.name}: pycrdt on a peer's message")
            peer.close(INVALID_PAYLOAD, "the message crashed the document library")

    def _handle(self, peer: Peer, message: Message, frame: bytes) -> None:
        if message.kind == protocol.AWARENESS:
            relayed = self._track_awareness(peer, message.payload)
            if relayed is not None:
                self._relay(protocol.awareness_message(relayed), peer)
        elif message.kind == protocol.RAW:
            if not peer.origin.permissions.write:
                self.dropped_updates += 1
                peer.send(protocol.raw_message(_refused(message)))
            elif self._on_raw is not None:
                self._spawn(self._answer_raw(peer, message))
        elif self.awareness_only:
            return
        elif message.sub == protocol.SYNC_STEP1:
            self._spawn(self._answer_step1(peer, message.payload))
        elif not peer.origin.permissions.write:
            # a reader's client may edit its own copy: it keeps receiving the others' updates
            self.dropped_updates += 1
        else:
            if self._check_update is not None:
                self._check_update(message.payload)
            self._apply(message.payload, peer.origin)

    def _track_awareness(self, peer: Peer, payload: bytes) -> bytes | None:
        """Apply the entries of ``peer``'s awareness update that are its own; returns the
        update to relay (None: nothing left). A client id belongs to the first peer that
        announces it, until that peer leaves: nobody else may set or remove it."""
        entries = protocol.decode_awareness(payload)
        clients = self._awareness_clients.setdefault(peer, set())
        own = [
            entry
            for entry in entries
            if entry[0] != self.awareness.client_id
            and entry[0] not in self._server_entries
            and self._awareness_owner.get(entry[0], peer) is peer
            and (entry[0] in clients or len(clients) < MAX_AWARENESS_CLIENTS)
        ]
        if len(own) < len(entries):
            self.refused_awareness += len(entries) - len(own)
            log.info("room %s: dropped awareness entries for client ids not the peer's", self.name)
            if not own:
                return None
            payload = protocol.encode_awareness(own)
        self.awareness.apply_awareness_update(payload, peer)
        for client_id, _clock, _state in own:
            if client_id in self.awareness.states:
                clients.add(client_id)
                self._awareness_owner[client_id] = peer
        return payload

    def offer_whole_update(self, state: bytes, updates: list[bytes]) -> None:
        """``updates``, applied one after the other the whole document when its state vector
        was ``state``, answer the next peer that asks for the whole document if the document
        has not changed since (so a big document just made is not encoded again, at once);
        they are used once, not kept."""
        self._whole = (state, updates)

    def withdraw_whole_update(self) -> None:
        """The document changed since ``offer_whole_update``: the offer no longer holds."""
        self._whole = None

    def _whole_update(self, state: bytes) -> list[bytes]:
        """The updates a peer whose state vector is ``state`` lacks."""
        whole, self._whole = self._whole, None
        if state == EMPTY_STATE and whole is not None and whole[0] == self.doc.get_state():
            return whole[1]
        return [self.doc.get_update(state)]

    async def _answer_step1(self, peer: Peer, state: bytes) -> None:
        # answer with a state that is all on disk: wait until the latest write at the time of
        # answering is durable (writes can arrive while we wait)
        while (waiting := self._barrier() if self._barrier else None) and not waiting.done():
            await asyncio.wait([waiting])
        if waiting is not None and (waiting.cancelled() or waiting.exception() is not None):
            peer.close(INTERNAL_ERROR, "the document could not be saved")
            return
        try:
            updates = self._whole_update(state)
        except ValueError as e:  # pycrdt: "Cannot decode state"
            peer.close(INVALID_PAYLOAD, f"invalid state vector: {e}"[:120])
            return
        # all but the last as updates, the last as the answer: a client counts itself synced
        # at the answer (y-websocket), with the whole document by then
        *before, last = updates
        for update in before:
            message = protocol.sync_message(protocol.SYNC_UPDATE, update)
            peer.send(message, first_sync=True, last=False)
        peer.send(protocol.sync_message(protocol.SYNC_STEP2, last), first_sync=True)

    async def _answer_raw(self, peer: Peer, message: Message) -> None:
        assert self._on_raw is not None
        reply = await self._on_raw(peer, message)
        if reply is not None:
            peer.send(protocol.raw_message(reply))

    def _relay(self, data: bytes, origin: Peer | None) -> None:
        for peer in list(self.peers):
            if peer is not origin:
                peer.send(data)

    # -- document updates -------------------------------------------------------------------

    def publish(
        self,
        update: bytes,
        origin: Origin | None = None,
        durable: asyncio.Future[Any] | Durable | None = None,
    ) -> None:
        """Send ``update`` to every peer but the one whose change it is (``origin``) once
        ``durable`` (the log write that holds it, or every one of several) has resolved;
        never if a write failed."""
        if self.closed or not self.peers:
            return
        writes = () if durable is None else durable if isinstance(durable, tuple) else (durable,)
        self._outbox.append((update, self._peer_of(origin), writes))
        if not self._scheduled:
            self._schedule()

    def _peer_of(self, origin: Origin | None) -> Peer | None:
        """The peer that made a change of ``origin`` (each connection has its own origin)."""
        if origin is None or origin.connection is None:
            return None
        return next((peer for peer in self.peers if peer.origin == origin), None)

    def _schedule(self) -> None:
        # sends are chained on the durability of the oldest update still waiting: no task,
        # no wake-up per update (this is the latency path of every keystroke)
        self._scheduled = True
        waiting = next((w for _, _, ws in self._outbox for w in ws if not w.done()), None)
        if waiting is None:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            waiting.add_done_callback(lambda _: self._flush())

    def _flush(self) -> None:
        self._scheduled = False
        if self.closed:
            return
        self.send_durable()
        if self._outbox and not self._scheduled:
            self._schedule()

    def send_durable(self) -> None:
        """Send, now, the updates at the head of the queue whose writes are all durable,
        merged (the rest wait for the callback already scheduled on their writes)."""
        batch: list[tuple[bytes, Peer | None]] = []
        while self._outbox and all(w.done() for w in self._outbox[0][2]):
            update, origin, writes = self._outbox.popleft()
            if any(w.cancelled() or w.exception() is not None for w in writes):
                continue  # not on disk: nobody may see it
            batch.append((update, origin))
        if batch and not self.closed:
            self._send_batch(batch)

    def _send_batch(self, batch: list[tuple[bytes, Peer | None]]) -> None:
        if len(batch) == 1:
            update, origin = batch[0]
            self._relay(protocol.sync_message(protocol.SYNC_UPDATE, update), origin)
            return
        merged: dict[Peer | None, bytes] = {}
        for peer in list(self.peers):
            excluded = peer if any(origin is peer for _, origin in batch) else None
            message = merged.get(excluded)
            if message is None:
                updates = [u for u, origin in batch if origin is not excluded or origin is None]
                if not updates:
                    continue
                message = merged[excluded] = protocol.sync_message(
                    protocol.SYNC_UPDATE, merge_updates(*updates)
                )
            peer.send(message)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    def close(self, code: int = 1001, reason: str = "room closed") -> None:
        """Close the room and every peer in it."""
        self.closed = True
        self._outbox.clear()
        for peer in list(self.peers):
            peer.close(code, reason)
        self.peers.clear()


def _refused(message: Message) -> dict[str, Any]:
    return {"type": message.raw, "responseTo": message.raw_id, "status": "failed"}


def _log_failure(task: asyncio.Task[Any]) -> None:
    error = None if task.cancelled() else task.exception()
    if error is not None:
        count_error("room.task", error, "a room's answer to a peer", logger=log)
