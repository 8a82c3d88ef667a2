"""A replica's websocket (``client/websocket.py``) against a room server played by a thread: a
commit is on the socket when ``commit()`` returns; commits and the server's close frame (the
replica's ``closed_reason``) go through on the transport path and on the stream path (TLS); a
refused websocket, or one answered with the wrong ``Sec-WebSocket-Accept``, is the server's
error; a message of many reads arrives whole; pings are answered both ways, and a server that
answers none of the client's ends the connection."""

from __future__ import annotations

import asyncio
import contextlib
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
    Ping,
    Pong,
    RejectConnection,
    Request,
)

from jupyter_cocalc_sync.client import ServerError, websocket
from jupyter_cocalc_sync.client.replica import RoomReplica
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import SERVER
from jupyter_cocalc_sync.transport import protocol

BIG_INPUT = "".join(f"line {i}\n" for i in range(200_000))

#: how long the server thread waits for a frame (a hang, not a latency bound)
HANG = 10


class FakeRoom(threading.Thread):
    """Accepts one websocket, answers the client's sync step 1 with a step 2 of ``state`` (an
    update; default: empty), and puts every later frame it receives in ``frames`` (a pong as
    ``b"pong"``); ``close(code, reason)`` sends a close frame, ``ping()`` a ping."""

    def __init__(
        self,
        refuse: bool = False,
        state: bytes = b"\x00\x00",
        *,
        answer_pings: bool = True,
        wrong_accept: bool = False,
    ) -> None:
        super().__init__(daemon=True)
        self.refuse = refuse
        self.answer_pings = answer_pings
        self.wrong_accept = wrong_accept
        self.state = state
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
                    if isinstance(event, Request) and self.wrong_accept:
                        conn.sendall(
                            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSBrZXk=\r\n\r\n"
                        )
                        return
                    if isinstance(event, Request):
                        self._send(AcceptConnection())
                    elif isinstance(event, BytesMessage):
                        message = protocol.decode(bytes(event.data))
                        if message.kind == protocol.SYNC and message.sub == protocol.SYNC_STEP1:
                            step2 = protocol.sync_message(protocol.SYNC_STEP2, self.state)
                            self._send(BytesMessage(step2))
                        else:
                            self.frames.put(bytes(event.data))
                    elif isinstance(event, Pong):
                        self.frames.put(b"pong")
                    elif isinstance(event, Ping):
                        self.frames.put(b"ping")
                        if self.answer_pings:
                            self._answer(event)
                    elif isinstance(event, CloseConnection):
                        return

    def _answer(self, ping: Ping) -> None:
        try:
            self._send(ping.response())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed after its ping: nobody is left to answer

    def ping(self) -> None:
        self._send(Ping(b"are you there"))

    def close(self, code: int, reason: str) -> None:
        self._send(CloseConnection(code, reason))

    def stop(self) -> None:
        self.listener.close()
        if self.conn is not None:
            # shut down, not closed: the thread's recv then returns b"" and its with-block closes
            # the socket (closed here, the descriptor went from under a recv still running:
            # "bad file descriptor" in the thread, an error of the test's teardown)
            with contextlib.suppress(OSError):  # (the thread closed it already)
                self.conn.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def room() -> Iterator[FakeRoom]:
    yield from _running(FakeRoom())


@pytest.fixture
def big_room() -> Iterator[FakeRoom]:
    """A room whose table has a cell of 2 MB: its first sync arrives in many reads."""
    db = notebook_syncdb()
    db.set({"type": "cell", "id": "big", "input": BIG_INPUT}, SERVER)
    db.commit(SERVER)
    yield from _running(FakeRoom(state=db.get_update()))


@pytest.fixture
def refusing_room() -> Iterator[FakeRoom]:
    yield from _running(FakeRoom(refuse=True))


@pytest.fixture
def silent_room() -> Iterator[FakeRoom]:
    """A room that answers none of the client's pings."""
    yield from _running(FakeRoom(answer_pings=False))


@pytest.fixture
def impostor_room() -> Iterator[FakeRoom]:
    """A server that answers the upgrade with a ``Sec-WebSocket-Accept`` of another key."""
    yield from _running(FakeRoom(wrong_accept=True))


@pytest.fixture
def quick_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pings every 50 ms (each answer still waited for as shipped: a busy machine's late
    pong is no silence)."""
    monkeypatch.setattr(websocket, "KEEPALIVE_SECONDS", 0.05)


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


async def test_a_message_of_many_reads_arrives_whole(big_room: FakeRoom, path: str) -> None:
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{big_room.port}/r", notebook_syncdb())
        await replica.start()
        assert replica.get_one({"type": "cell", "id": "big"}) == {
            "type": "cell",
            "id": "big",
            "input": BIG_INPUT,
        }
        await replica.close()


async def test_the_servers_ping_is_answered(room: FakeRoom, path: str) -> None:
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{room.port}/r", notebook_syncdb())
        await replica.start()
        room.ping()
        assert await asyncio.to_thread(room.frames.get, timeout=HANG) == b"pong"
        await replica.close()


async def test_a_websocket_accepted_for_another_key_is_a_server_error(
    impostor_room: FakeRoom,
) -> None:
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{impostor_room.port}/r", notebook_syncdb())
        with pytest.raises(ServerError, match="Sec-WebSocket-Accept"):
            await replica.start()
        await replica.close()


async def test_a_server_that_answers_the_pings_keeps_the_connection(
    room: FakeRoom, path: str, quick_keepalive: None
) -> None:
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{room.port}/r", notebook_syncdb())
        await replica.start()
        for _ in range(3):  # (each waited for its answer before the next was sent)
            assert await asyncio.to_thread(room.frames.get, timeout=HANG) == b"ping"
        assert replica.closed_reason is None
        await replica.close()


async def test_a_server_that_answers_no_ping_ends_the_connection(
    silent_room: FakeRoom, path: str, quick_keepalive: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket, "PONG_SECONDS", 0.05)  # (no answer ever comes)
    async with httpx.AsyncClient() as http:
        replica = RoomReplica(http, f"ws://127.0.0.1:{silent_room.port}/r", notebook_syncdb())
        await replica.start()
        await replica.wait_for(lambda r: r.closed_reason, timeout=HANG)
        assert "did not answer a ping" in str(replica.closed_reason)
        await replica.close()
