"""Clients of both stacks: YNotebook (JupyterLab) and SyncDB clients that count the bytes they
receive, and the kernel websocket as the browser speaks it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from harness import BenchServer
from httpx_ws import AsyncWebSocketSession, aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import (
    Doc,
    Map,
    TransactionEvent,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from pycrdt.websocket.websocket import HttpxWebsocket

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook

# the test suite's helpers, shared rather than copied
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import eventually

# -- clients ----------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], Any], doc: Doc, timeout: float = 300) -> Any:
    """Wait until ``predicate()`` is true, re-checking after every transaction of ``doc``."""
    return await eventually(predicate, doc, timeout=timeout)


#: httpx-ws options of the benchmark's websockets: big messages (a notebook's first sync), and
#: no keepalive pings, whose 20 s timeout closes the connection of a client that is busy with
#: thousands of messages on a loaded machine (the server's pong waits behind them)
WEBSOCKET_OPTIONS: dict[str, Any] = {
    "max_message_size_bytes": 1 << 30,
    "keepalive_ping_interval_seconds": None,
}


@dataclass
class ByteCount:
    """Websocket messages a client received: how many, and their payload bytes."""

    frames: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.frames += 1
        self.bytes += size

    def reset(self) -> None:
        self.frames = self.bytes = 0


class CountingWebsocket(HttpxWebsocket):
    """pycrdt's httpx websocket channel, counting what it receives into ``count``."""

    def __init__(self, websocket: Any, path: str, count: ByteCount) -> None:
        super().__init__(websocket, path)
        self.count = count

    async def recv(self) -> bytes:
        message = await super().recv()
        self.count.add(len(message))
        return message


@contextlib.asynccontextmanager
async def yjs_connection(doc: Doc, channel: HttpxWebsocket) -> AsyncIterator[None]:
    """Sync ``doc`` over ``channel`` (the y-websocket protocol) while entered, as a JupyterLab
    client does: local changes are sent, updates from the server are applied and **not** sent
    back. (pycrdt's ``Provider`` sends every transaction of the doc, the server's included, so
    each update a client receives would come back to the server: a 20 MB notebook's first sync
    is then refused as too big a message, and every output doubles the server's work.)"""
    outgoing: asyncio.Queue[bytes] = asyncio.Queue()
    applying = False

    def local(event: TransactionEvent) -> None:
        if not applying:  # called synchronously at the end of each transaction
            outgoing.put_nowait(event.update)

    async def receive() -> None:
        nonlocal applying
        async for message in channel:
            if message[0] != YMessageType.SYNC:
                continue
            applying = True
            try:
                reply = handle_sync_message(message[1:], doc)
            finally:
                applying = False
            if reply is not None:
                await channel.send(reply)
        # the server closed the connection: what waits for the document must not wait for ever
        raise ConnectionError(f"the server closed the websocket of {channel.path}")

    async def send() -> None:
        await channel.send(create_sync_message(doc))
        while True:
            await channel.send(create_update_message(await outgoing.get()))

    subscription = doc.observe(local)
    try:
        # a task group: if the connection fails, the code using it is cancelled at once (and
        # the error raised) rather than left waiting for updates that will never come
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(receive)
            tasks.start_soon(send)
            yield
            tasks.cancel_scope.cancel()
    finally:
        doc.unobserve(subscription)


@contextlib.asynccontextmanager
async def ynotebook_client(
    server: BenchServer,
    http: httpx.AsyncClient,
    path: str,
    *,
    cells: int = 1,
    count: ByteCount | None = None,
) -> AsyncIterator[YNotebook]:
    """A JupyterLab-like client (jupyter-collaboration's protocol): ``PUT session``, then a
    YNotebook synced over the room; entered once the document holds ``cells`` cells. With
    ``count``, the websocket messages it receives are counted there."""
    response = await http.put(
        f"/api/collaboration/session/{path}",
        content=json.dumps({"format": "json", "type": "notebook"}),
    )
    response.raise_for_status()
    session = response.json()
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    ynb = YNotebook(Doc())
    meta = ynb.ydoc.get("meta", type=Map)
    ws: AsyncWebSocketSession
    async with aconnect_ws(url, http, **WEBSOCKET_OPTIONS) as ws:
        channel = HttpxWebsocket(ws, room) if count is None else CountingWebsocket(ws, room, count)
        async with yjs_connection(ynb.ydoc, channel):
            await wait_until(lambda: len(meta) > 0 and len(ynb.ycells) >= cells, ynb.ydoc)
            yield ynb


class CountingLiveNotebook(LiveNotebook):
    """Our SyncDB client, counting the websocket messages it receives into ``count``."""

    def __init__(self, *args: Any, count: ByteCount, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = count

    def _receive(self, frame: bytes) -> None:
        self.count.add(len(frame))
        super()._receive(frame)


@contextlib.asynccontextmanager
async def counting_live_notebook(
    client: CocalcSyncClient, path: str, count: ByteCount
) -> AsyncIterator[LiveNotebook]:
    """``client.open(path)`` with a ``CountingLiveNotebook``; closed on exit."""
    info = await client.request("GET", client.notebook_url(path), records="false")
    notebook = CountingLiveNotebook(client, info["path"], info["file_id"], count=count)
    await notebook.start()
    try:
        yield notebook
    finally:
        await notebook.close()


def cell_record(notebook: LiveNotebook, cell_id: str) -> dict[str, Any]:
    return notebook.db.peek(("cell", cell_id)) or {}


def ordered_outputs(output: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A SyncDB ``output`` map (``{"0": …, "1": …}``) as a list."""
    output = output or {}
    return [output[k] for k in sorted(output, key=int) if output[k] is not None]


# -- kernels, as the browser talks to them ----------------------------------------------------


async def new_session(http: httpx.AsyncClient, path: str, kernel: str = "python3") -> str:
    """``POST /api/sessions`` for a notebook, as JupyterLab does when it opens one; the kernel
    id."""
    response = await http.post(
        "/api/sessions",
        json={
            "path": path,
            "name": Path(path).name,
            "type": "notebook",
            "kernel": {"name": kernel},
        },
    )
    response.raise_for_status()
    return response.json()["kernel"]["id"]


class KernelChannel:
    """One ``/api/kernels/<id>/channels`` websocket, jupyter_server's JSON protocol (the default
    subprotocol): every message ``{"header", "parent_header", "metadata", "content",
    "channel", …}`` as one text frame."""

    def __init__(self, ws: AsyncWebSocketSession, session: str) -> None:
        self.ws = ws
        self.session = session

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        server: BenchServer,
        http: httpx.AsyncClient,
        kernel_id: str,
        *,
        query: str = "",
    ) -> AsyncIterator[KernelChannel]:
        session = uuid.uuid4().hex
        url = server.ws_url(f"/api/kernels/{kernel_id}/channels?session_id={session}{query}")
        ws: AsyncWebSocketSession
        async with aconnect_ws(url, http, **WEBSOCKET_OPTIONS) as ws:
            yield cls(ws, session)

    @property
    def raw_socket(self) -> socket.socket:
        return self.ws.stream.get_extra_info("socket")

    def set_client_nodelay(self, on: bool) -> None:
        """TCP_NODELAY on this end of the connection (asyncio sockets start with it on)."""
        self.raw_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(on))

    async def send_execute(self, code: str, *, silent: bool = False) -> str:
        """Send an ``execute_request``; its msg_id."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.session,
            "username": "bench",
            "version": "5.3",
            "date": datetime.now(UTC).isoformat(),
        }
        content = {
            "code": code,
            "silent": silent,
            "store_history": not silent,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
        await self.ws.send_text(json.dumps(message))
        return msg_id

    async def receive(self) -> dict[str, Any]:
        return json.loads(await self.ws.receive_text())

    async def replies(self, msg_id: str) -> AsyncIterator[dict[str, Any]]:
        """The messages answering ``msg_id``, until both its ``execute_reply`` and the kernel's
        ``status: idle`` have come (other messages are skipped)."""
        reply = idle = False
        while not (reply and idle):
            message = await self.receive()
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message.get("msg_type") or message["header"]["msg_type"]
            if kind == "execute_reply":
                reply = True
            elif kind == "status" and message["content"].get("execution_state") == "idle":
                idle = True
            yield message

    async def execute(self, code: str, *, silent: bool = False) -> dict[str, Any]:
        """Run ``code``; the ``execute_reply``."""
        msg_id = await self.send_execute(code, silent=silent)
        reply: dict[str, Any] = {}
        async for message in self.replies(msg_id):
            if message["msg_type"] == "execute_reply":
                reply = message
        return reply


async def warm_session_kernel(server: BenchServer, http: httpx.AsyncClient, path: str) -> None:
    """A session for the notebook at ``path`` (as JupyterLab opens one), its kernel answering."""
    kernel_id = await new_session(http, path)
    async with KernelChannel.connect(server, http, kernel_id) as channel:
        await channel.execute("pass", silent=True)
