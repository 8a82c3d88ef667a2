"""``RoomReplica``: a live replica of a SyncDB table that the server serves in a room.

The replica and the server's table exchange Yjs updates over the room's y-websocket: local
commits are sent, the server's changes applied as they come. ``LiveNotebook`` (the notebook's
table) and ``LiveWidgets`` (its widget table) are replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Self, TypeVar

import httpcore
import httpx

from ..errors_seen import count_error
from ..origin import SERVER, Origin, OriginKind
from ..sync.table import ChangeEvent, Record, SyncDB
from ..transport import protocol
from ..transport.protocol import ProtocolError
from .errors import ServerError
from .websocket import WEBSOCKET_ERRORS, RoomSocket, WebSocketClosed

T = TypeVar("T")

#: the changes made through a replica: its user's (the server records them under the user the
#: connection is authenticated as)
OWN = Origin(OriginKind.USER)


class RoomReplica:
    """A table replica synced through the room at ``room_url`` (a ``ws://`` URL)."""

    def __init__(self, http: httpx.AsyncClient, room_url: str, db: SyncDB) -> None:
        self.http = http
        self.room_url = room_url
        self.db = db
        #: the latest connection's websocket (None: never connected)
        self._socket: RoomSocket | None = None
        self._synced = asyncio.Event()
        self._sync_waiters: list[asyncio.Future[None]] = []
        #: the server's awareness client id in the room (``None``: not followed)
        self.awareness_id: int | None = None
        #: the server's latest awareness state in the room (kernel usage, run progress)
        self.server_state: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        #: why the latest connection ended (None: it has not); a replica whose connection
        #: may come back reconnects by itself (``_run``)
        self.closed_reason: str | None = None
        self._synced_on_connection = False
        self._unsubscribes = [
            self.db.on_update(self._on_update),
            self.db.on_change(lambda event: self._changed.set()),
        ]

    # -- the table API ----------------------------------------------------------------------

    def set(self, record: Record) -> None:
        self.db.set(record, OWN)

    def delete(self, where: Record) -> int:
        return self.db.delete(where, OWN)

    def get(self, where: Record | None = None) -> list[Record]:
        return self.db.get(where)

    def get_one(self, where: Record) -> Record | None:
        return self.db.get_one(where)

    def commit(self) -> bool:
        """Send the changes made since the last commit to the server as one change."""
        return self.db.commit(OWN)

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> Callable[[], None]:
        return self.db.on_change(callback)

    @property
    def syncing(self) -> bool:
        """True while the replica is connected, or will connect again (``closed_reason``
        says why the latest connection ended)."""
        return self._task is not None and not self._task.done()

    async def wait_for(self, predicate: Callable[[Self], T], timeout: float = 30) -> T:
        """Wait until ``predicate(self)`` is true (re-checked after every change)."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                value = predicate(self)
                if value:
                    return value
                await self._changed.wait()

    # -- sync -------------------------------------------------------------------------------

    def _on_update(self, update: bytes, origin: Origin) -> None:
        if origin == OWN:
            self._send(protocol.sync_message(protocol.SYNC_UPDATE, update))

    def _send(self, frame: bytes) -> None:
        # written now; dropped while there is no open connection: the next connection's sync
        # handshake sends the server what it lacks
        if self._socket is not None:
            self._socket.send(frame)

    async def start(self) -> None:
        """Connect and wait until this replica is in sync with the server's table."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._run(self.room_url, ready))
        await ready
        await asyncio.wait_for(self._synced.wait(), timeout=60)

    async def _run(self, url: str, ready: asyncio.Future[None]) -> None:
        """Keep the replica connected: a connection the network or the server ended, with a
        close that says it may come back (the server stopping or restarting, a store outage,
        a client that fell behind), is made again, after a back-off, as JupyterLab's provider
        does; the sync handshake then exchanges what either side missed meanwhile, this
        replica's unsent changes included. The first connection's failure is ``start``'s."""
        delay = RECONNECT_FIRST_DELAY
        while True:
            self._synced_on_connection = False
            socket = self._socket = RoomSocket(self._receive)
            try:
                await socket.run(self.http, url, lambda: self._opened(ready))
            except Exception as e:  # the connection's end, whatever ended it, is the replica's
                self.closed_reason, retry = _ending(e)
                if not ready.done():
                    ready.set_exception(e)
                    return
                if retry is None:  # a bug of ours: counted, logged, not retried
                    count_error("client.connection", e, f"the replica of {self.room_url}")
                if not retry:
                    return
            finally:
                self._changed.set()
            if self._synced_on_connection:
                delay = RECONNECT_FIRST_DELAY
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    def _opened(self, ready: asyncio.Future[None]) -> None:
        if not ready.done():
            ready.set_result(None)
        self._send(protocol.sync_message(protocol.SYNC_STEP1, self.db.get_state()))

    def _receive(self, frame: bytes) -> None:
        message = protocol.decode(frame)
        if message.kind == protocol.AWARENESS:
            self._receive_awareness(message.payload)
            return
        if message.kind != protocol.SYNC:
            return
        if message.sub == protocol.SYNC_STEP1:
            reply = self.db.get_update(message.payload)
            self._send(protocol.sync_message(protocol.SYNC_STEP2, reply))
            return
        self.db.apply_update(message.payload, SERVER)
        if message.sub == protocol.SYNC_STEP2:
            self._synced.set()
            self._synced_on_connection = True
            if self._sync_waiters:
                waiter = self._sync_waiters.pop(0)
                if not waiter.done():
                    waiter.set_result(None)

    def _receive_awareness(self, payload: bytes) -> None:
        for client_id, _clock, state in protocol.decode_awareness(payload):
            if client_id == self.awareness_id:  # other peers' states are their cursors
                self.server_state = json.loads(state) or {}
                self._changed.set()

    async def sync(self, timeout: float = 60) -> None:
        """Return once this replica has every change the server had made durable when it was
        called (a sync round trip: the server answers only with what is on disk)."""
        waiter = asyncio.get_running_loop().create_future()
        self._sync_waiters.append(waiter)
        self._send(protocol.sync_message(protocol.SYNC_STEP1, self.db.get_state()))
        try:
            await asyncio.wait_for(waiter, timeout)
        finally:
            if waiter in self._sync_waiters:
                self._sync_waiters.remove(waiter)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # (``_run`` keeps its end)
                await self._task
            self._task = None
        for unsubscribe in self._unsubscribes:
            unsubscribe()


#: how a replica's connection ends without a bug of ours: the network, the server's HTTP or
#: websocket answer, a frame that is not the protocol
CONNECTION_ERRORS = (
    httpx.HTTPError,
    httpcore.NetworkError,
    OSError,
    ProtocolError,
    ServerError,
    *WEBSOCKET_ERRORS,
)

#: seconds before the first attempt to connect again, and the most between two attempts
RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0

#: close codes after which the same connection may be made again: the server going away
#: (stopping, restarting) or asking to come back later (a client that fell behind)
RETRYABLE_CLOSE_CODES = frozenset({1001, 1006, 1012, 1013})


def _ending(exc: BaseException) -> tuple[str, bool | None]:
    """Why a connection ended, and whether to make it again (None: a bug of ours)."""
    if isinstance(exc, WebSocketClosed):
        # e.g. 1011 {"reason": "store_unavailable", "retry": true}
        reason = f"{exc.code}: {exc.reason}"
        return reason, exc.code in RETRYABLE_CLOSE_CODES or _says_retry(exc.reason)
    if not isinstance(exc, CONNECTION_ERRORS):
        return repr(exc), None
    # the network or the server's process gone; a refused handshake (403, 404) is an answer
    return repr(exc), not isinstance(exc, ServerError)


def _says_retry(reason: str | None) -> bool:
    try:
        said = json.loads(reason or "")
    except ValueError:
        return False
    return isinstance(said, dict) and said.get("retry") is True
