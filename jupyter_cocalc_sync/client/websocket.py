"""``RoomSocket``: a replica's websocket, its frames handled where they arrive.

A replica's traffic is small binary frames whose latency counts (a run request, a keystroke,
an output). httpx opens and upgrades the connection (its headers, cookies, proxies and TLS
settings apply); the websocket then runs on the connection's asyncio transport: a frame is
written in the call that sends it, and a frame received is handed on in the callback that
read it — no queue, no task and no loop turn between the socket and the table (httpx-ws, which
the replica used before, has a task and a queue each way: about a third of the client's CPU
per warm run). A connection whose stream is not a plain asyncio TCP transport (TLS, which
anyio runs over the socket itself) is read by a task and written through the stream, with
the same frame handling.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

from ..transport.protocol import ProtocolError
from .errors import ServerError

#: how often the client pings the server, and how long it waits for each answer
KEEPALIVE_SECONDS = 20.0
PONG_SECONDS = 20.0

#: what the socket reads at once on the stream path
_READ_BYTES = 65_536


class WebSocketClosed(Exception):
    """The server closed the websocket (``code``, ``reason``: its close frame)."""

    def __init__(self, code: int, reason: str | None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


#: how a websocket ends besides the network: the server's close frame, a frame that breaks the
#: protocol (ours or the server's)
WEBSOCKET_ERRORS = (WebSocketClosed, LocalProtocolError, RemoteProtocolError)


class RoomSocket(asyncio.Protocol):
    """One websocket: ``send`` writes a binary frame now; ``on_message`` gets every binary
    frame received, in the callback that read it. ``run`` connects and returns (or raises)
    when the connection ends."""

    def __init__(self, on_message: Callable[[bytes], None]) -> None:
        self.on_message = on_message
        self._connection = Connection(ConnectionType.CLIENT)
        self._transport: asyncio.Transport | None = None
        #: the stream path's writer: frames for the task that writes them
        self._writes: asyncio.Queue[bytes] | None = None
        self._ended: asyncio.Future[None] | None = None
        self._partial = bytearray()
        self._pong = asyncio.Event()

    # -- sending ----------------------------------------------------------------------------

    def send(self, message: bytes) -> None:
        """Send one binary frame (dropped once the connection is closing)."""
        if self._connection.state is ConnectionState.OPEN:
            self._write(self._connection.send(BytesMessage(message)))

    def _write(self, data: bytes) -> None:
        if self._transport is not None:
            if not self._transport.is_closing():
                self._transport.write(data)
        elif self._writes is not None:
            self._writes.put_nowait(data)

    # -- receiving --------------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        self._connection.receive_data(data)
        for event in self._connection.events():
            if isinstance(event, BytesMessage):
                if not event.message_finished:
                    self._partial += event.data
                elif self._partial:
                    self._partial += event.data
                    message, self._partial = bytes(self._partial), bytearray()
                    self.on_message(message)
                else:
                    self.on_message(bytes(event.data))
            elif isinstance(event, Ping):
                self._write(self._connection.send(event.response()))
            elif isinstance(event, Pong):
                self._pong.set()
            elif isinstance(event, CloseConnection):
                if self._connection.state is ConnectionState.REMOTE_CLOSING:
                    self._write(self._connection.send(event.response()))
                raise WebSocketClosed(event.code, event.reason)
            elif isinstance(event, Message):
                raise ProtocolError("a text frame in a binary room")

    def _end(self, error: BaseException | None) -> None:
        if self._ended is not None and not self._ended.done():
            if error is None:
                error = ConnectionResetError("the server closed the connection")
            self._ended.set_exception(error)

    # -- asyncio.Protocol (the transport path) ----------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            self._received(data)
        except Exception as e:  # raised by ``run``: the replica counts what it did not expect
            self._end(e)

    def eof_received(self) -> bool:
        self._end(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)

    # -- running ----------------------------------------------------------------------------

    async def run(self, http: httpx.AsyncClient, url: str, opened: Callable[[], None]) -> None:
        """Connect to ``url`` through ``http``, call ``opened()`` once the websocket is open,
        and return once it has ended (raises what ended it: ``WebSocketClosed`` for a close
        frame from the server, ``ServerError`` if it refused the websocket)."""
        key = base64.b64encode(os.urandom(16)).decode()
        headers = {
            "connection": "upgrade",
            "upgrade": "websocket",
            "sec-websocket-key": key,
            "sec-websocket-version": "13",
        }
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        async with http.stream("GET", url, headers=headers) as response:
            if response.status_code != 101:
                body = (await response.aread()).decode(errors="replace")
                raise ServerError(response.status_code, body or "the websocket was refused")
            accept = response.headers.get("sec-websocket-accept", "").encode()
            if accept != generate_accept_token(key.encode()):
                # (RFC 6455 4.1: not an answer to this handshake; a proxy or cache's, say)
                raise ServerError(101, "the server's Sec-WebSocket-Accept does not answer our key")
            stream = response.extensions["network_stream"]
            transport, leading = _plain_transport(stream)
            tasks: list[asyncio.Task[Any]] = [loop.create_task(self._keepalive())]
            try:
                if transport is not None:
                    self._transport = transport
                    transport.set_protocol(self)
                    transport.set_write_buffer_limits()
                    self.data_received(leading)
                    transport.resume_reading()
                else:
                    writes = self._writes = asyncio.Queue()
                    tasks.append(loop.create_task(self._read_stream(stream)))
                    tasks.append(loop.create_task(self._write_stream(stream, writes)))
                opened()
                await self._ended
            finally:
                for task in tasks:
                    task.cancel()
                self._ended.cancel()  # (an end that comes later has nobody to tell)
                self._close()
                # (ended before the connection is given up: none is left pending on the loop)
                await asyncio.wait(tasks)

    def _close(self) -> None:
        if self._connection.state is ConnectionState.OPEN:
            self._write(self._connection.send(CloseConnection(code=1000)))
        if self._transport is not None:
            self._transport.close()
        self._writes = None  # (its writer is gone: what is sent now is dropped)

    async def _read_stream(self, stream: Any) -> None:
        try:
            while data := await stream.read(_READ_BYTES):
                self._received(data)
            self._end(None)
        except Exception as e:  # raised by ``run``: the replica counts what it did not expect
            self._end(e)

    async def _write_stream(self, stream: Any, writes: asyncio.Queue[bytes]) -> None:
        try:
            while True:
                await stream.write(await writes.get())
        except Exception as e:  # raised by ``run``: the replica counts what it did not expect
            self._end(e)

    async def _keepalive(self) -> None:
        """Ping every ``KEEPALIVE_SECONDS``; a server that does not answer within
        ``PONG_SECONDS`` ends the connection (a dead network shows as an error, not as
        silence)."""
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            if self._connection.state is not ConnectionState.OPEN:
                return
            self._pong.clear()
            self._write(self._connection.send(Ping(b"keepalive")))
            try:
                await asyncio.wait_for(self._pong.wait(), PONG_SECONDS)
            except TimeoutError:
                self._end(TimeoutError("the server did not answer a ping"))
                return


def _plain_transport(stream: object) -> tuple[asyncio.Transport | None, bytes]:
    """The asyncio transport under httpcore's upgraded stream, if the websocket can run on it
    (plain TCP, still open), and the bytes read from it past the upgrade answer: httpcore's
    leftover and what anyio's protocol holds unread. ``(None, b"")``: use the stream."""
    anyio_stream = getattr(getattr(stream, "_stream", None), "_stream", None)
    transport = getattr(anyio_stream, "_transport", None)
    anyio_protocol = getattr(anyio_stream, "_protocol", None)
    leading = getattr(stream, "_leading_data", None)
    unread = getattr(anyio_protocol, "read_queue", None)
    if (
        not isinstance(transport, asyncio.Transport)
        or transport.is_closing()
        or transport.get_extra_info("sslcontext") is not None
        or not isinstance(leading, bytes)
        or not isinstance(unread, deque)
        or getattr(anyio_protocol, "is_at_eof", True)
        or getattr(anyio_protocol, "exception", None) is not None
    ):
        return None, b""
    buffered = leading + b"".join(unread)
    unread.clear()
    return transport, buffered
