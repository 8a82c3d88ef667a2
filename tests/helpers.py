"""Test helpers: real clients of a running server, waiting on events rather than sleeping."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult

import nbformat
import psutil
from httpx import AsyncClient
from httpx_ws import aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Provider
from pycrdt.websocket.websocket import HttpxWebsocket


async def start_session(jp_fetch, path: str, kernel: str = "python3") -> dict[str, Any]:
    """``POST /api/sessions`` for a notebook, as JupyterLab does when it opens one: the session
    model (pytest-jupyter's ``jp_fetch``)."""
    name = path.rsplit("/", 1)[-1]
    body = {"path": path, "name": name, "type": "notebook", "kernel": {"name": kernel}}
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    return json.loads(r.body)


def write_notebook(path, cells: list[dict] | None = None, **metadata: Any) -> dict:
    """Write an nbformat 4.5 notebook with ``cells`` (source strings or cell dicts)."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}, **metadata}
    )
    for i, cell in enumerate(cells or []):
        if isinstance(cell, str):
            cell = nbformat.v4.new_code_cell(cell, id=f"cell-{i}")
        nb.cells.append(nbformat.from_dict(cell))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return nb


def read_notebook_file(path) -> nbformat.NotebookNode | None:
    """The notebook in ``path``, or None while a writer is half-way (jupyter_server's
    "atomic" writing rewrites the file in place, so a reader can see it partly written)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        # (not ``nbformat.read``, which logs an ERROR for an invalid notebook: a test may read
        # the invalid file it wrote before the server's repaired save replaces it)
        return nbformat.convert(nbformat.reader.reads(text), 4)
    except (OSError, ValueError):  # half-written: not JSON (yet)
        return None


def replace_file(path, text: str) -> None:
    """Write ``text`` the way git does: a new file renamed over the old one."""
    import os

    tmp = f"{path}.tmp-write"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


async def eventually(predicate: Callable[[], Any], *docs: Doc, timeout: float = 15) -> Any:
    """Wait until ``predicate()`` is true, re-checking after every change of ``docs``.

    Without docs to watch, it re-checks every 20 ms (for conditions on files or servers).
    """
    changed = asyncio.Event()
    subscriptions = [(doc, doc.observe(lambda _e: changed.set())) for doc in docs]
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                value = predicate()
                if value:
                    return value
                if docs:
                    await changed.wait()
                else:
                    await asyncio.sleep(0.02)
    finally:
        for doc, sub in subscriptions:
            doc.unobserve(sub)


async def poll(condition: Callable[[], Any], timeout: float = 15, every: float = 0.02) -> Any:
    """Wait until the async ``condition()`` is true (for state only a request can observe)."""
    async with asyncio.timeout(timeout):
        while True:
            value = await condition()
            if value:
                return value
            await asyncio.sleep(every)


#: a websocket as a browser's (JupyterLab's rooms): no keep-alive pings of the client's own.
#: httpx-ws pings every 20 s and closes the connection when a pong takes 20 s more, which a
#: server sharing a test's loop with fifty clients on two busy cores can take
BROWSER_LIKE_WS: dict[str, Any] = {"keepalive_ping_interval_seconds": None}


class Server:
    """URLs and an authenticated HTTP client for a server under test."""

    def __init__(self, base_url: str, token: str | None, http: AsyncClient | None = None) -> None:
        """``http``: an already authenticated client (cookies, e.g. behind JupyterHub)."""
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = http or AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"token {token}"}, timeout=60
        )

    def ws_url(self, path: str) -> str:
        return self.base_url.replace("http", "ws", 1) + path

    async def session(
        self, path: str, file_format: str = "json", file_type: str = "notebook"
    ) -> dict:
        response = await self.http.put(
            f"/api/collaboration/session/{path}",
            content=json.dumps({"format": file_format, "type": file_type}),
        )
        response.raise_for_status()
        return response.json()

    @contextlib.asynccontextmanager
    async def ynotebook(self, path: str) -> AsyncIterator[YNotebook]:
        """A JupyterLab-like client: a YNotebook synced over the collaboration room."""
        session = await self.session(path)
        room = f"json:notebook:{session['fileId']}"
        url = self.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
        ynb = YNotebook(Doc())
        async with (
            aconnect_ws(url, self.http, **BROWSER_LIKE_WS) as ws,
            Provider(ynb.ydoc, HttpxWebsocket(ws, room)) as provider,
        ):
            # synced, as JupyterLab waits for: the server's answer (a big document's first
            # sync comes in several updates before it)
            async with asyncio.timeout(60):
                await provider.synced.wait()
            ymeta = ynb.ydoc.get("meta", type=Map)
            await eventually(lambda: len(ymeta) > 0, ynb.ydoc)
            yield ynb

    @contextlib.asynccontextmanager
    async def yfile(self, path: str) -> AsyncIterator[Any]:
        """A JupyterLab-like editor of a text file: a YUnicode synced over its room."""
        from jupyter_ydoc import YUnicode

        session = await self.session(path, "text", "file")
        room = f"text:file:{session['fileId']}"
        url = self.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
        text = YUnicode(Doc())
        async with (
            aconnect_ws(url, self.http, **BROWSER_LIKE_WS) as ws,
            Provider(text.ydoc, HttpxWebsocket(ws, room)),
        ):
            await eventually(lambda: text.get() != "", text.ydoc)
            yield text

    async def aclose(self) -> None:
        await self.http.aclose()


def cell_sources(ynb: YNotebook) -> list[str]:
    return [str(c["source"]) for c in ynb.ycells]


def cell_ids(ynb: YNotebook) -> list[str]:
    return [c["id"] for c in ynb.ycells]


# -- cells of a live (SyncDB) replica ---------------------------------------------------------


def cell(nb, cell_id: str) -> dict:
    return nb.get_one({"type": "cell", "id": cell_id}) or {}


def outputs(record: dict) -> list[dict]:
    output = record.get("output") or {}
    return [output[k] for k in sorted(output, key=int)]


def text_of(record: dict) -> str:
    return "".join(o.get("text", "") for o in outputs(record) if o.get("output_type") == "stream")


def finished(nb, cell_id: str) -> bool:
    record = cell(nb, cell_id)
    return record.get("state") == "idle" and record.get("end") is not None


def png_bytes(width: int = 96, height: int = 96, seed: int = 7) -> bytes:
    """A real PNG of noise (so it does not compress below the blob threshold)."""
    rows = []
    state = seed
    for _ in range(height):
        row = bytearray([0])
        for _ in range(width * 3):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            row.append(state >> 16 & 0xFF)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


async def upgrade_to_websocket(
    server: Any, url: SplitResult, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The websocket handshake of a raw connection to ``url`` (a client that then reads at a
    pace of its own, or not at all)."""
    writer.write(
        (
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Authorization: token {server.token}\r\n\r\n"
        ).encode()
    )
    status = await reader.readline()
    assert b" 101 " in status, status
    await reader.readuntil(b"\r\n\r\n")


class LoopTurns:
    """``async with LoopTurns() as turns``: ``turns.count`` is how often a task of its own got
    to run meanwhile (how often the event loop served other tasks)."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopTurns:
        self._task = asyncio.get_running_loop().create_task(self._turn())
        await asyncio.sleep(0)  # its first turn: counting from here
        self.count = 0
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _turn(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


def kernels_of_this_test() -> list[psutil.Process]:
    """The running kernels of this test's in-process server: their connection files are in the
    test's own runtime folder (a session's servers, on this worker too, keep theirs elsewhere)."""
    runtime = os.environ["JUPYTER_RUNTIME_DIR"] + os.sep
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            command = " ".join(child.cmdline())
            if "ipykernel" in command and runtime in command and child.status() != "zombie":
                found.append(child)
    return found


#: what a fresh replay worker must not import: seconds of CPU before its first replay
SERVER_PACKAGES = ("jupyter_server", "jupyter_ydoc", "jupyter_events", "tornado")


def server_modules_after(code: str, stdin: bytes = b"") -> tuple[list[str], list[str]]:
    """``(every module, the server's modules)`` a fresh interpreter has loaded after running
    ``code`` (given ``stdin``)."""
    script = f"import sys\n{code}\nprint(*sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script], input=stdin, capture_output=True, check=True
    )
    loaded = done.stdout.decode().split()
    return loaded, [m for m in loaded if m.split(".")[0] in SERVER_PACKAGES]
