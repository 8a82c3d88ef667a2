"""Large notebooks: a first sync far bigger than ``send_queue_bytes`` reaches a client that
reads it slowly without the client being closed, and opening a notebook does not rewrite its
file when nothing changed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import struct
from urllib.parse import urlsplit

import nbformat
import pytest
from helpers import eventually, upgrade_to_websocket, write_notebook
from pycrdt import Doc

from jupyter_cocalc_sync.documents import manager as manager_module
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.handlers import rooms as rooms_module
from jupyter_cocalc_sync.sync.table import SyncDB
from jupyter_cocalc_sync.transport import protocol

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
#: the client's receive buffer: small, so the server's socket cannot take the first sync at once
RECEIVE_BUFFER = 16 * 1024
QUEUE_LIMIT = 256 * 1024


def notebook_with_output(path, cells: int, output_bytes: int) -> None:
    """A notebook of ``cells`` code cells, each with ``output_bytes`` of incompressible
    stream output."""
    write_notebook(
        path,
        [
            nbformat.v4.new_code_cell(
                f"x = {i}",
                id=f"cell-{i}",
                outputs=[
                    nbformat.v4.new_output(
                        "stream", name="stdout", text=os.urandom(output_bytes // 2).hex()
                    )
                ],
            )
            for i in range(cells)
        ],
    )


class SlowReader:
    """A websocket client on a raw socket: it sends what it is told and reads only when
    asked, through a small receive buffer (a browser busy with a big first sync)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server, path: str) -> SlowReader:
        url = urlsplit(server.ws_url(path))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        await upgrade_to_websocket(server, url, reader, writer)
        return cls(reader, writer)

    def send(self, payload: bytes) -> None:
        """One masked binary frame (a client's frames are masked)."""
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x82, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x82, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def header(self) -> tuple[int, int]:
        """The next frame's opcode and payload size (servers do not mask)."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, size

    async def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: its opcode and payload."""
        opcode, size = await self.header()
        return opcode, await self.reader.readexactly(size)

    def close(self) -> None:
        self.writer.close()


def apply(replica: SyncDB, opcode: int, payload: bytes) -> None:
    """Apply a server's frame to the client's replica (a close frame fails the test)."""
    assert opcode != 0x8, f"closed: {payload[:2].hex()} {payload[2:].decode()}"
    message = protocol.decode(payload)
    if message.kind == protocol.SYNC and message.sub != protocol.SYNC_STEP1:
        replica.doc.apply_update(message.payload)


@pytest.mark.cocalc(send_queue_bytes=QUEUE_LIMIT)
async def test_a_first_sync_far_bigger_than_the_send_queue_does_not_close_the_client(
    server, root_dir, jp_serverapp
):
    notebook_with_output(root_dir / "nb.ipynb", cells=40, output_bytes=200_000)  # 8 MB
    file_id = (await server.http.get(NB, params={"records": "false"})).json()["file_id"]
    client = await SlowReader.connect(server, f"/api/cocalc-sync/room/syncdb:{file_id}")
    client.send(protocol.sync_message(protocol.SYNC_STEP1, Doc().get_state()))
    # read up to the head of the first sync: the server has sent it, the client reads no more
    replica = notebook_syncdb()
    first_sync: int | None = None
    while first_sync is None:
        opcode, size = await client.header()
        if size > QUEUE_LIMIT:
            first_sync = size
        else:
            apply(replica, opcode, await client.reader.readexactly(size))
    # while the client is still reading the whole document, the document changes: these
    # changes are what the room sends besides the first sync, a few kB in all
    for i in range(5):
        edit = {"set": [{"type": "cell", "id": "cell-0", "input": f"x = {i} # edited"}]}
        assert (await server.http.post(NB + "/records", json=edit)).status_code == 200
    # the client now reads everything: the whole document, then the edits, and no close
    apply(replica, 0x2, await client.reader.readexactly(first_sync))
    edited = {"type": "cell", "id": "cell-0"}
    async with asyncio.timeout(60):
        while (replica.get_one(edited) or {}).get("input") != "x = 4 # edited":
            apply(replica, *await client.frame())
    assert len([r for r in replica.get() if r["type"] == "cell"]) == 40
    notebooks = jp_serverapp.web_app.settings["cocalc_sync"].notebooks
    assert len(notebooks.get(file_id).broadcast.rooms["syncdb"].peers) == 1
    client.close()


def compact_notebook(path) -> None:
    """A notebook as other tools write it: compact JSON, every text one string, an image, HTML,
    an attachment, a raw cell."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(30_000)).decode()
    cells = [
        nbformat.v4.new_code_cell(
            "print('a')\nprint('b')",
            id="code",
            execution_count=1,
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text="a\nb\n"),
                nbformat.v4.new_output("display_data", {"image/png": png, "text/plain": "<img>"}),
                nbformat.v4.new_output(
                    "execute_result", {"text/html": "<b>x</b>\n<i>y</i>"}, execution_count=1
                ),
            ],
        ),
        nbformat.v4.new_markdown_cell(
            "# title\n![a](attachment:a.png)",
            id="md",
            attachments={"a.png": {"image/png": png}},
        ),
        nbformat.v4.new_raw_cell("raw\ntext", id="raw"),
    ]
    nb = nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    path.write_text(json.dumps(nb, separators=(",", ":")), encoding="utf-8")


@pytest.mark.cocalc(send_queue_bytes=QUEUE_LIMIT)
async def test_opening_notebooks_in_jupyterlab_rewrites_none_of_their_files(
    server, root_dir, jp_serverapp, corpus_dir, monkeypatch
):
    """Notebooks opened by a JupyterLab-like client, one of them with a first sync far bigger
    than the send queue (and the corpus, when present): nothing to save, the files untouched.
    Opening the big one hands the memory its import freed back to the operating system, and
    so does its first sync once written."""
    documents = jp_serverapp.web_app.settings["cocalc_sync"].documents
    released: list[str] = []
    released_after_sync: list[str] = []

    def release() -> None:
        released.append(name)

    def release_after_sync() -> None:
        released_after_sync.append(name)

    monkeypatch.setattr(manager_module, "release_freed_memory_soon", release)
    monkeypatch.setattr(rooms_module, "release_freed_memory_soon", release_after_sync)
    compact_notebook(root_dir / "compact.ipynb")
    notebook_with_output(root_dir / "big.ipynb", cells=20, output_bytes=200_000)  # 4 MB
    names = ["compact.ipynb", "big.ipynb"]
    for path in sorted(corpus_dir.glob("*.ipynb")):
        shutil.copyfile(path, root_dir / path.name)
        names.append(path.name)
    rewritten = []
    for name in names:
        before = (root_dir / name).read_bytes()
        async with server.ynotebook(name) as ynb:
            document = await documents.get(name)
            cells = len(document.db.get({"type": "cell"}))
            await eventually(lambda: len(ynb.ycells) == cells, ynb.ydoc)  # noqa: B023 - awaited here
            # nothing changed: the save a JupyterLab user could ask for has nothing to write
            status = await document.files.save()
        if status != "skipped" or (root_dir / name).read_bytes() != before:
            rewritten.append((name, status))
    assert not rewritten
    assert "big.ipynb" in released and "compact.ipynb" not in released
    assert "big.ipynb" in released_after_sync and "compact.ipynb" not in released_after_sync
