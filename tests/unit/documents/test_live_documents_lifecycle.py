"""``LiveDocuments``: one live copy per file, holds, the cleanup delay, close_all, renames —
with real plain-text documents over jupyter_server's file contents manager (no server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import poll
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

from jupyter_cocalc_sync.documents.lifecycle import DocumentState, LiveDocuments
from jupyter_cocalc_sync.documents.text import FileDocument

#: long enough that nothing closes by accident while a test looks; the tests that watch a close
#: happen set their own
NEVER = 3600.0


class Client:
    """A connected client as the lifecycle sees one: something in ``document.clients``."""

    author = "tester"


@pytest.fixture
def contents(tmp_path: Path) -> AsyncFileContentsManager:
    return AsyncFileContentsManager(root_dir=str(tmp_path))


class Opener:
    """Opens real plain-text documents and counts the opens."""

    def __init__(self, contents: AsyncFileContentsManager) -> None:
        self.contents = contents
        self.opened: list[FileDocument] = []
        self.gate: asyncio.Event | None = None  # set: opens wait for it

    def __call__(self, path: str) -> FileDocument:
        return FileDocument(path, path, "text", "file", self.contents, save_delay=NEVER)

    async def open(self, path: str) -> FileDocument:
        document = self(path)
        if self.gate is not None:
            await self.gate.wait()
        await document.open()
        self.opened.append(document)
        return document


async def _open(live: LiveDocuments[FileDocument], opener: Opener, path: str) -> FileDocument:
    return await live.open(path, lambda: opener.open(path))


def _closed(live: LiveDocuments[FileDocument], key: str):  # for ``poll``
    async def condition() -> bool:
        return live.state(key) == DocumentState.CLOSED

    return condition


async def test_concurrent_opens_of_one_file_open_it_once(tmp_path, contents):
    (tmp_path / "a.txt").write_text("a\n")
    live: LiveDocuments[FileDocument] = LiveDocuments(cleanup_delay=NEVER)
    opener = Opener(contents)
    opener.gate = asyncio.Event()
    requests = [asyncio.ensure_future(_open(live, opener, "a.txt")) for _ in range(3)]
    await poll(lambda: _true(live.state("a.txt") == DocumentState.OPENING))
    opener.gate.set()
    documents = await asyncio.gather(*requests)
    assert len(opener.opened) == 1
    assert all(d is opener.opened[0] for d in documents)
    assert live.state("a.txt") == DocumentState.OPEN
    await live.close_all()


async def test_a_failed_open_fails_every_waiter_and_leaves_it_closed(tmp_path, contents):
    live: LiveDocuments[FileDocument] = LiveDocuments(cleanup_delay=NEVER)
    opener = Opener(contents)
    opener.gate = asyncio.Event()
    requests = [asyncio.ensure_future(_open(live, opener, "missing.txt")) for _ in range(2)]
    await poll(lambda: _true(live.state("missing.txt") == DocumentState.OPENING))
    opener.gate.set()
    results = await asyncio.gather(*requests, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["DocumentNotFoundError"] * 2
    assert live.state("missing.txt") == DocumentState.CLOSED
    (tmp_path / "missing.txt").write_text("here now\n")
    document = await _open(live, opener, "missing.txt")  # a later request tries again
    assert document.ydoc.get() == "here now\n"
    await live.close_all()


async def test_a_request_during_the_close_waits_for_the_final_save(tmp_path, contents):
    (tmp_path / "a.txt").write_text("a\n")
    live: LiveDocuments[FileDocument] = LiveDocuments(cleanup_delay=NEVER)
    opener = Opener(contents)
    first = await _open(live, opener, "a.txt")
    first.ydoc.set("edited\n")  # unsaved: the close saves it
    closing = live.close_document("a.txt")
    assert live.state("a.txt") == DocumentState.CLOSING
    second = await _open(live, opener, "a.txt")
    assert closing is not None and closing.done()
    assert second is not first and second.ydoc.get() == "edited\n"
    assert (tmp_path / "a.txt").read_text() == "edited\n"
    await live.close_all()


async def test_a_held_document_outlives_the_cleanup_delay_until_released(tmp_path, contents):
    for name in ("held.txt", "free.txt"):
        (tmp_path / name).write_text(name)
    live: LiveDocuments[FileDocument] = LiveDocuments(cleanup_delay=0.2)
    opener = Opener(contents)
    held = await _open(live, opener, "held.txt")
    live.hold(held)
    live.hold(held)  # holds count
    assert await _open(live, opener, "held.txt") is held  # a use (a REST call) meanwhile
    await _open(live, opener, "free.txt")  # its cleanup is due after the held one's would be
    await poll(_closed(live, "free.txt"))
    assert live.state("held.txt") == DocumentState.OPEN
    live.release(held)
    await _open(live, opener, "held.txt")
    await _open(live, opener, "free.txt")
    await poll(_closed(live, "free.txt"))
    assert live.state("held.txt") == DocumentState.OPEN  # one hold is left
    live.release(held)
    await poll(_closed(live, "held.txt"))
    assert held.room.closed


async def test_a_connected_client_keeps_it_open_and_its_leaving_starts_the_delay(
    tmp_path, contents
):
    for name in ("used.txt", "free.txt"):
        (tmp_path / name).write_text(name)
    live: LiveDocuments[FileDocument] = LiveDocuments(cleanup_delay=0.2)
    opener = Opener(contents)
    used = await _open(live, opener, "used.txt")
    client = Client()
    live.connect(used, client)  # type: ignore[arg-type]
    assert await _open(live, opener, "used.txt") is used  # a use (a REST call) meanwhile
    await _open(live, opener, "free.txt")
    await poll(_closed(live, "free.txt"))
    assert live.state("used.txt") == DocumentState.OPEN
    live.disconnect(used, client)  # type: ignore[arg-type]
    await poll(_closed(live, "used.txt"))


async def test_close_all_saves_and_closes_every_document(tmp_path, contents):
    closed: list[str] = []

    async def on_closed(document: FileDocument) -> None:
        closed.append(document.path)

    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("old\n")
    live: LiveDocuments[FileDocument] = LiveDocuments(cleanup_delay=NEVER, on_closed=on_closed)
    opener = Opener(contents)
    for name in ("a.txt", "b.txt"):
        document = await _open(live, opener, name)
        document.ydoc.set(f"new {name}\n")
    await live.close_all()
    assert sorted(closed) == ["a.txt", "b.txt"]
    assert not live.documents
    assert live.state("a.txt") == live.state("b.txt") == DocumentState.CLOSED
    assert (tmp_path / "a.txt").read_text() == "new a.txt\n"
    assert (tmp_path / "b.txt").read_text() == "new b.txt\n"


async def test_renames_and_deletions_reach_the_documents_under_the_path(tmp_path, contents):
    (tmp_path / "dir").mkdir()
    for name in ("dir/a.txt", "dir/b.txt", "dirt.txt"):
        (tmp_path / name).write_text("x\n")
    live: LiveDocuments[FileDocument] = LiveDocuments(cleanup_delay=NEVER)
    opener = Opener(contents)
    a, b, dirt = [await _open(live, opener, n) for n in ("dir/a.txt", "dir/b.txt", "dirt.txt")]
    (tmp_path / "dir").rename(tmp_path / "new")
    live.renamed("dir", "new")
    assert (a.path, b.path, dirt.path) == ("new/a.txt", "new/b.txt", "dirt.txt")
    (tmp_path / "new" / "a.txt").unlink()
    live.deleted("new/a.txt")
    await live.close_all()
    assert not (tmp_path / "new" / "a.txt").exists()  # deleted and not edited: not recreated
    assert (tmp_path / "new" / "b.txt").read_text() == "x\n"
    assert not (tmp_path / "dir").exists()


async def _true(value: bool) -> bool:
    return value
