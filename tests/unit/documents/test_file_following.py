"""``FileFollower`` with real plain-text documents over jupyter_server's file contents manager
(no server): stamps, the debounced save, merges, deletion, reappearance, renames."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest
from helpers import poll, replace_file
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

from jupyter_cocalc_sync.documents.text import FileDocument

NEVER = 3600.0


@pytest.fixture
def saves() -> list[str]:
    """What the contents manager saved, in order."""
    return []


@pytest.fixture
def contents(tmp_path: Path, saves: list[str]) -> AsyncFileContentsManager:
    def pre_save_hook(model: dict, path: str, contents_manager: object) -> None:
        saves.append(model["content"])

    manager = AsyncFileContentsManager(root_dir=str(tmp_path))
    manager.register_pre_save_hook(pre_save_hook)
    return manager


async def opened(
    contents, path: str, *, save_delay: float = NEVER, poll_interval: float = 0.0, fmt="text"
) -> FileDocument:
    document = FileDocument(
        path,
        path,
        fmt,
        "file",
        contents,
        save_delay=save_delay,
        poll_interval=poll_interval,
    )
    await document.open()
    return document


def edit(document: FileDocument, content: str) -> None:
    """A live edit, as a client's update does it."""
    document.ydoc.set(content)
    document.files.changed()


async def _true(value: object) -> object:
    return value


async def test_a_touch_changes_nothing_and_a_change_merges_line_wise(tmp_path, contents, saves):
    path = tmp_path / "a.py"
    path.write_text("one\ntwo\nthree\n")
    document = await opened(contents, "a.py")
    stat = path.stat()
    os.utime(path, (stat.st_atime + 10, stat.st_mtime + 10))  # touch: a new stamp
    assert await document.files.check() is False
    assert document.files.stamp == await document.files.file.stat()  # the touch was seen
    document.ydoc.set("# live\none\ntwo\nthree\n")  # a live edit on the first line
    replace_file(path, "one\ntwo\n3\n")  # a change on the last
    assert await document.files.check() is True  # merged, and to be saved back
    assert document.ydoc.get() == "# live\none\ntwo\n3\n"
    await document.close()
    assert path.read_text() == "# live\none\ntwo\n3\n"
    assert saves == ["# live\none\ntwo\n3\n"]


async def test_other_formats_take_the_file_unless_edited_live(tmp_path, contents):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00one")
    document = await opened(contents, "blob.bin", fmt="base64")
    path.write_bytes(b"\x00two!")
    assert await document.files.check() is False  # the file's content, nothing to save back
    assert base64.b64decode(document.ydoc.get()) == b"\x00two!"
    document.ydoc.set(base64.b64encode(b"\x00live").decode())  # edited live: kept
    path.write_bytes(b"\x00three")
    assert await document.files.check() is True  # and saved back over the file's
    assert base64.b64decode(document.ydoc.get()) == b"\x00live"
    await document.close()


async def test_a_save_merges_a_change_on_disk_it_has_not_seen(tmp_path, contents):
    path = tmp_path / "a.py"
    path.write_text("one\ntwo\nthree\nfour\n")
    document = await opened(contents, "a.py")
    replace_file(path, "one\ntwo\nthree\n4\n")  # not polled: the save finds it
    edit(document, "1\ntwo\nthree\nfour\n")
    assert await document.files.save() == "success"
    assert path.read_text() == "1\ntwo\nthree\n4\n"
    assert document.ydoc.get() == "1\ntwo\nthree\n4\n"
    assert await document.files.save() == "skipped"  # nothing new
    await document.close()


async def test_changes_are_saved_once_after_the_delay(tmp_path, contents, saves):
    (tmp_path / "a.py").write_text("0\n")
    document = await opened(contents, "a.py", save_delay=0.2)
    for n in range(1, 6):
        edit(document, f"{n}\n")
    await poll(lambda: _true((tmp_path / "a.py").read_text() == "5\n"))
    assert saves == ["5\n"]
    await document.close()
    assert saves == ["5\n"]  # nothing left to save at the close


async def test_a_flood_of_changes_does_not_postpone_the_save_for_ever(tmp_path, contents, saves):
    (tmp_path / "a.py").write_text("0\n")
    delay = 0.1
    document = await opened(contents, "a.py", save_delay=delay)
    n = 0
    async with asyncio.timeout(15):
        while not saves:  # changes keep coming faster than the delay
            n += 1
            edit(document, f"{n}\n")
            await asyncio.sleep(delay / 4)
    assert n >= 10  # saved by the cap (10 × the delay after the first change), not the pause
    await document.close()


async def test_a_deleted_file_stays_deleted_unless_edited(tmp_path, contents, saves):
    for name in ("kept.py", "edited.py"):
        (tmp_path / name).write_text("x\n")
    kept = await opened(contents, "kept.py")
    edited = await opened(contents, "edited.py")
    for document in (kept, edited):
        (tmp_path / document.path).unlink()
        assert await document.files.check() is False
        assert document.files.deleted is not None
    edit(edited, "y\n")
    await kept.close()
    await edited.close()
    assert not (tmp_path / "kept.py").exists()
    assert (tmp_path / "edited.py").read_text() == "y\n"


async def test_a_file_back_on_disk_is_merged(tmp_path, contents):
    path = tmp_path / "a.py"
    path.write_text("one\ntwo\n")
    document = await opened(contents, "a.py", poll_interval=0.05)  # followed by polling
    path.unlink()
    await poll(lambda: _true(document.files.deleted is not None))
    path.write_text("one\ntwo\nthree\n")
    await poll(lambda: _true(document.ydoc.get() == "one\ntwo\nthree\n"))
    assert document.files.deleted is None
    await document.close()
    assert path.read_text() == "one\ntwo\nthree\n"


async def test_a_renamed_file_is_saved_at_its_new_path_only(tmp_path, contents):
    (tmp_path / "a.py").write_text("x\n")
    document = await opened(contents, "a.py")
    (tmp_path / "a.py").unlink()
    assert await document.files.check() is False  # polling saw the old path gone first
    (tmp_path / "b.py").write_text("x\n")  # the rename, as the contents API does it
    document.renamed("b.py")
    assert await document.files.save() == "skipped"  # the new path has what it has
    edit(document, "# after the rename\nx\n")
    await document.close()
    assert sorted(p.name for p in tmp_path.glob("*.py")) == ["b.py"]
    assert (tmp_path / "b.py").read_text() == "# after the rename\nx\n"
