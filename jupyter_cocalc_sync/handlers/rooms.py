"""WebSocket rooms (y-websocket) and the collaboration session route of jupyter-collaboration.

``/api/cocalc-sync/room/syncdb:<file_id>`` serves a notebook's SyncDB table;
``/api/collaboration/room/<format>:<type>:<file_id>`` and ``PUT /api/collaboration/session/…``
speak the protocol of ``jupyter_server_ydoc`` so the stock JupyterLab frontend works unchanged.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any, cast

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from ..errors import (
    DocumentNotFoundError,
    NotebookFormatError,
    PathOutsideRootError,
    StoreUnavailableError,
)
from ..errors_seen import count_error
from ..heap import release_freed_memory_soon
from ..origin import Origin
from ..permissions import READ_ONLY
from ..rooms.registry import Membership, SessionExpiredError
from ..transport.room import INTERNAL_ERROR
from .authorization import READ_DOCUMENT, peer_permissions, requires
from .base import CocalcAPIHandler
from .services import services_of

#: close codes the stock frontend understands (jupyter-collaboration)
NOT_FOUND = 4404
BAD_REQUEST = 4400
SERVER_ERROR = 4500
MAX_CLOSE_REASON_BYTES = 123
#: a client that fell too far behind: it may reconnect at once
TRY_AGAIN_LATER = 1013
#: the server is stopping (the stock frontend reconnects, to the next server)
GOING_AWAY = 1001
#: how long a stopping server waits for its room clients to answer its close frames before
#: it drops their connections (tornado itself waits 5 s, longer than a stop should take)
CLOSE_HANDSHAKE_SECONDS = 1.0
SLOW_CLIENT_REASON = json.dumps({"reason": "send_queue_full", "retry": True})
#: a first sync of at least this many bytes hands the memory its messages took back to the
#: operating system once written (``heap``)
RELEASE_AFTER_FIRST_SYNC = 1_000_000
#: the opcode of a binary websocket frame (RFC 6455)
BINARY_FRAME = 0x2


class RoomConnections:
    """The room websockets this server has open, so that a stopping server closes every one
    of them and lets what they were writing finish before its event loop stops (a write or a
    keep-alive ping left pending is destroyed with the loop, and the client is left to find
    out from a dead socket)."""

    def __init__(self) -> None:
        self.handlers: set[RoomHandler] = set()

    async def close_all(self, handshake_seconds: float = CLOSE_HANDSHAKE_SECONDS) -> None:
        handlers = list(self.handlers)
        protocols = [h.ws_connection for h in handlers if h.ws_connection is not None]
        for handler in handlers:
            handler.close(GOING_AWAY, "the server is stopping")
        settling = {h.disconnected for h in handlers} | {w for h in handlers for w in h.writing}
        if settling:
            _, settling = await asyncio.wait(settling, timeout=handshake_seconds)
        for protocol in protocols:  # a client that did not answer the close frame in time
            if protocol.stream is not None and not protocol.stream.closed():
                protocol.stream.close()
        if settling:  # (settled by the closed sockets: the bound is for a bug, not a wait)
            await asyncio.wait(settling, timeout=handshake_seconds)


class RoomHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """One client in one room; the room does the protocol."""

    namespace = "cocalc"

    def initialize(self, namespace: str = "cocalc") -> None:
        self.namespace = namespace
        self.membership: Membership | None = None
        #: the origin of this client's changes: who it is, what it may do beyond reading
        #: (asked when it connects), this connection
        self.origin: Origin = Origin.of_peer(None, READ_ONLY)
        #: bytes given to the websocket and not yet written to the network
        self.queued_bytes = 0
        #: the whole document was sent once (the first sync, not counted in ``queued_bytes``)
        self.first_sync_sent = False
        #: bytes of the first sync so far
        self.first_sync_bytes = 0
        #: the writes not yet taken by the network (each one a task of tornado's)
        self.writing: set[asyncio.Future[Any]] = set()
        #: done once the connection is gone (the close handshake over, or the socket lost)
        self.disconnected: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def username(self) -> str | None:
        user = self.current_user
        return getattr(user, "username", None) if user else None

    @ws_authenticated
    @requires(READ_DOCUMENT)
    async def get(self, *args: Any, **kwargs: Any) -> None:
        return await super().get(*args, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # a refused handshake answers JSON, never a login page
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": self._reason or "error", "status": status_code}))

    async def open(self, room_id: str) -> None:
        super().open()  # keep-alive pings
        services_of(self).connections.handlers.add(self)
        self.set_nodelay(True)
        self.origin = Origin.of_peer(self.username, await peer_permissions(self))
        registry = services_of(self).rooms
        session_id = self.get_query_argument("sessionId", None)
        try:
            self.membership = await registry.join(self.namespace, room_id, self, session_id)
        except SessionExpiredError as e:
            self.close(
                1003,
                json.dumps(
                    {"reason": "unknown_session", "sessionId": e.session_id, "reloadable": True}
                ),
            )
        except DocumentNotFoundError as e:
            self.close(NOT_FOUND, str(e)[:120])
        except StoreUnavailableError:
            self.close(INTERNAL_ERROR, json.dumps({"reason": "store_unavailable", "retry": True}))
        except (PathOutsideRootError, NotebookFormatError) as e:
            self.close(BAD_REQUEST, str(e)[:120])
        except Exception as e:  # a bug of ours (as a REST 500): the client gets a close code
            count_error("room.join", e, f"joining room {room_id}", logger=self.log)
            self.close(SERVER_ERROR, "could not open the document")

    def on_message(self, message: bytes | str) -> None:
        if self.membership is not None:
            self.membership.room.receive(self, message)
            services_of(self).activity.touch()  # (after: a keystroke is sent on from receive)

    def on_close(self) -> None:
        membership, self.membership = self.membership, None
        if membership is not None:
            membership.leave()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        services_of(self).connections.handlers.discard(self)
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    @property
    def max_message_size(self) -> int:
        return services_of(self).limits.max_frame_bytes

    def send(self, data: bytes, *, first_sync: bool = False, last: bool = True) -> None:
        """Queue ``data``; a client that has more than ``send_queue_bytes`` not yet taken by
        the network (it stopped reading, or reads slower than the room changes) is closed,
        with a reason that says it may reconnect (it then gets the document afresh).

        The first sync of a connection (``first_sync``: the whole document, which may be
        far bigger than the limit, in one message or several up to the ``last``) is not
        counted: a client reading a 50 MB notebook is not behind, and what the room sends
        meanwhile is counted as usual. Only the first one is exempt, so a client asking for
        the document again and again is still bounded.

        A message the network takes whole in the call (nearly every one) is not counted at
        all; the rest until tornado's future of their write is done."""
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        counted = not first_sync or self.first_sync_sent
        ends_first_sync = first_sync and last and not self.first_sync_sent
        self.first_sync_sent = self.first_sync_sent or (first_sync and last)
        if not counted:
            self.first_sync_bytes += len(data)
        limit = services_of(self).limits.send_queue_bytes
        if counted and self.queued_bytes and self.queued_bytes + len(data) > limit:
            # (one message larger than the limit still goes out alone)
            self.log.warning(
                "closing a room client that fell %d bytes behind", self.queued_bytes + len(data)
            )
            self.close(TRY_AGAIN_LATER, SLOW_CLIENT_REASON)
            return
        try:
            future = self._write_binary(data)
        except (WebSocketClosedError, StreamClosedError):
            return
        stream = self.ws_connection.stream if self.ws_connection is not None else None
        if stream is not None and not stream.writing() and not stream.closed():
            # the network took every byte of it, in the call: nothing is queued, nothing to
            # wait for (a callback per message ran a loop turn of its own after each send)
            if ends_first_sync and self.first_sync_bytes >= RELEASE_AFTER_FIRST_SYNC:
                release_freed_memory_soon()
            return
        self.writing.add(future)
        if counted:
            self.queued_bytes += len(data)
            future.add_done_callback(partial(self._sent, size=len(data)))
        else:
            future.add_done_callback(self._written)
        if ends_first_sync and self.first_sync_bytes >= RELEASE_AFTER_FIRST_SYNC:
            future.add_done_callback(self._release_memory)

    def _write_binary(self, data: bytes) -> asyncio.Future[None]:
        """Write ``data`` as one binary frame; the future of the stream's write.

        tornado's ``write_message`` wraps that future in a task of its own, per message, to
        turn a closed stream's error into its own: a task created and run for every message
        to every peer (a broadcast to a room of 50 pays it 50 times; measured cold, as the
        server is after a kernel's few milliseconds of work, a small message to two peers took
        190 µs through ``write_message`` and 99 µs without its task).
        A connection without compression (tornado negotiates it only when the handler's
        ``get_compression_options`` asks for it, and ours does not) writes the frame with
        tornado's own framing, without the task; ``send`` handles both errors. Both are
        tornado's private parts: a tornado without them gets ``write_message`` (and the test
        that no task is made fails, to say so)."""
        connection = self.ws_connection
        write_frame = getattr(connection, "_write_frame", None)
        if (
            isinstance(connection, WebSocketProtocol13)
            and getattr(connection, "_compressor", False) is None
            and write_frame is not None
        ):
            return cast("asyncio.Future[None]", write_frame(True, BINARY_FRAME, data))
        return self.write_message(data, binary=True)

    def _release_memory(self, _written: asyncio.Future[None]) -> None:
        """A big first sync is written: its messages (copies of the whole document, in pieces
        the C library keeps mapped once freed) go back to the operating system, with what the
        other opens of a burst freed (``heap.py``)."""
        release_freed_memory_soon()

    def _sent(self, future: asyncio.Future[None], size: int) -> None:
        self.queued_bytes -= size
        self._written(future)

    def _written(self, future: asyncio.Future[Any]) -> None:
        self.writing.discard(future)
        if not future.cancelled():
            future.exception()  # a closed socket is not an error

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self.ws_connection is not None:
            super().close(code, None if reason is None else fit_close_reason(reason))
        self.on_close()


class DocSessionHandler(CocalcAPIHandler):
    """``PUT /api/collaboration/session/{path}``: the file id and session of a document."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def put(self, path: str) -> None:
        path = self.collaboration_path(path)
        body = self.json_body()
        file_format, file_type = body.get("format"), body.get("type")
        if not isinstance(file_format, str) or not isinstance(file_type, str):
            raise web.HTTPError(400, 'the body needs "format" and "type" strings')
        services = self.services
        documents = services.documents
        known = documents.file_id_manager.get_id(path) is not None
        if file_type == "notebook":
            document = await documents.get(path, ynotebook=True)  # JupyterLab is coming
            file_id, session_id = document.file_id, document.session_id
        else:
            if not await services.file_exists(path):
                raise DocumentNotFoundError(f"no file at {path!r}")
            file_id = documents.file_id(path)
            opened = await services.file_rooms.get(path, file_id, file_format, file_type)
            session_id = opened.session_id
        self.finish_json(
            {"format": file_format, "type": file_type, "fileId": file_id, "sessionId": session_id},
            status=200 if known else 201,
        )


def fit_close_reason(reason: str) -> str:
    """``reason`` cut to the 123 bytes of UTF-8 a close frame can carry (a longer one breaks
    the connection instead of closing it)."""
    return reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


def room_routes() -> list[tuple[str, type, dict[str, Any]]]:
    return [
        (r"/api/cocalc-sync/room/(.+)", RoomHandler, {"namespace": "cocalc"}),
        (r"/api/collaboration/room/(.+)", RoomHandler, {"namespace": "collaboration"}),
        (r"/api/collaboration/session/(.+)", DocSessionHandler, {}),
    ]


__all__ = ["DocSessionHandler", "RoomHandler", "room_routes"]
