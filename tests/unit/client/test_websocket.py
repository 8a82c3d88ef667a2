"""A replica's websocket (``client/websocket.py``) against a room server played by a thread: a
commit is on the socket when ``commit()`` returns; commits and the server's close frame (the
replica's ``closed_reason``) go through on the transport path and on the stream path (TLS); a
refused websocket is the server's error."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    Request,
)

from jupyter_cocalc_sync.client import ServerError, websocket
from jupyter_cocalc_sync.client.replica import RoomReplica
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.transport import protocol

#: how long the server thread waits for a frame (a hang, not a latency bound)
HANG = 10


class FakeRoom(threading.Thread):
    """Accepts one websocket, answers the client's sync step 1 with an empty step 2, and puts
    every later frame it receives in ``frames``; ``close(code, reason)`` sends a close frame."""

    def __init__(self, refuse: bool = False) -> None:
        super().__init__(daemon=True)
        self.refuse = refuse
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frames: queue.Queue[bytes] = queue.Queue()
        self.conn: socket.socket | None = None
        self.ws = WSConnection(ConnectionType.SERVER)
        self._send_lock = threading.Lock()

    def _send(self, event: object) -> None:
        assert self.conn is not None
        with self._send_lock:
            self.conn.sendall(self.ws.send(event))  # type: ignore[arg-type]

    def run(self) -> None:
        conn, _ = self.listener.accept()
        self.conn = conn
        with conn:
            while data := conn.recv(65536):
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, Request) and self.refuse:
                        self._send(RejectConnection(status_code=403))
                        return
                    if isinstance(event, Request):
                        self._send(AcceptConnection())
                    elif isinstance(event, BytesMessage):
                        message = protocol.decode(bytes(event.data))
                        if message.kind == protocol.SYNC and message.sub == protocol.SYNC_STEP1:
                            step2 = protocol.sync_message(protocol.SYNC_STEP2, b"\x00\x00")
                            self._send(BytesMessage(step2))
                        else:
                            self.frames.put(bytes(event.data))
                    elif isinstance(event, CloseConnection):
                        return

    def close(self, code: int, reason: str) -> None:
        self._send(CloseConnection(code, reason))

    def stop(self) -> None:
        self.listener.close()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture
def room() -> Iterator[FakeRoom]:
    yield from _running(FakeRoom())


@pytest.fixture
def refusing_room() -> Iterator[FakeRoom]:
    yield from _running(FakeRoom(refuse=True))


def _running(fake: FakeRoom) -> Iterator[FakeRoom]:
    fake.start()
    yield fake
    fake.stop()
    fake.join(HANG)


@pytest.fixture(params=["transport", "stream"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stream":  # as for TLS: the stream is not a plain asyncio transport
        monkeypatch.setattr(websocket, "_plain_transport", lambda stream: (None, b""))
    return str(request.param)


async def test_a_commit_is_on_the_socket_when_commit_returns(room: FakeRoom) -> None:
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{room.port}/room", notebook_syncdb())
        await replica.start()
        replica.set({"type": "cell", "id": "a", "input": "1+1"})
        assert replica.commit()
        # blocking this loop: only what ``commit`` wrote already can reach the server
        assert_update(room.frames.get(timeout=HANG))
        await replica.close()


async def test_commits_reach_the_server_on_either_path(room: FakeRoom, path: str) -> None:
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{room.port}/room", notebook_syncdb())
        await replica.start()
        replica.set({"type": "cell", "id": "a", "input": "2+2"})
        assert replica.commit()
        assert_update(await asyncio.to_thread(room.frames.get, timeout=HANG))
        await replica.close()


def assert_update(frame: bytes) -> None:
    message = protocol.decode(frame)
    assert (message.kind, message.sub) == (protocol.SYNC, protocol.SYNC_UPDATE)


async def test_the_servers_close_frame_is_the_closed_reason(room: FakeRoom, path: str) -> None:
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{room.port}/room", notebook_syncdb())
        await replica.start()
        room.close(1011, "store_unavailable")
        await replica.wait_for(lambda r: r.closed_reason, timeout=HANG)
        assert replica.closed_reason == "1011: store_unavailable"
        await replica.close()


async def test_a_refused_websocket_is_a_server_error(refusing_room: FakeRoom) -> None:
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{refusing_room.port}/r", notebook_syncdb())
        with pytest.raises(ServerError) as refused:
            await replica.start()
        assert refused.value.status == 403
        await replica.close()
