"""``NotebookFile`` over jupyter_server's file contents manager (no server): opening reads a
notebook once, and knows its hash from that read."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

from jupyter_cocalc_sync.documents import following
from jupyter_cocalc_sync.documents.following import FileAccess
from jupyter_cocalc_sync.documents.notebook_file import NotebookFile


class CountingContents(AsyncFileContentsManager):
    """Counts the reads of file bytes (content or hash)."""

    reads = 0

    async def _read_file(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await super()._read_file(*args, **kwargs)


async def test_opening_reads_the_file_once_and_takes_its_hash_from_that_read(
    tmp_path: Path,
) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    (tmp_path / "a.ipynb").write_text(nbformat.writes(notebook), encoding="utf-8")
    contents = CountingContents(root_dir=str(tmp_path))
    file = NotebookFile(None, FileAccess(contents, lambda: "a.ipynb"))  # type: ignore[arg-type]
    text, stamp = await file.read()
    assert await file.hash_after_read(stamp) is not None
    assert contents.reads == 1
    model = await contents.get("a.ipynb", content=False, require_hash=True)
    assert await file.hash_after_read(stamp) == model["hash"]  # (read again: no read kept)
    assert nbformat.reads(text, 4) == notebook


async def test_the_hash_of_the_file_read_is_jupyter_servers_and_made_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big notebook's hash takes tens of ms: not on the event loop, where jupyter_server's
    file manager would make it; the same hash all the same (what JupyterLab compares)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("é ✓ 𝄞\r\nz")])
    (tmp_path / "a.ipynb").write_text(nbformat.writes(notebook), encoding="utf-8")
    contents = AsyncFileContentsManager(root_dir=str(tmp_path), hash_algorithm="sha512")
    hashed_on: list[int] = []
    text_hash = following.text_hash

    def recording(algorithm: str, model: dict[str, Any]) -> dict[str, str]:
        hashed_on.append(threading.get_ident())
        return text_hash(algorithm, model)

    monkeypatch.setattr(following, "text_hash", recording)
    file = NotebookFile(None, FileAccess(contents, lambda: "a.ipynb"))  # type: ignore[arg-type]
    _, stamp = await file.read()
    model = await contents.get("a.ipynb", content=False, require_hash=True)
    assert await file.hash_after_read(stamp) == model["hash"]
    assert hashed_on and threading.get_ident() not in hashed_on


async def test_a_contents_manager_with_a_hash_of_its_own_gives_it(tmp_path: Path) -> None:
    class OwnHash(AsyncFileContentsManager):
        def _get_hash(self, byte_content: bytes) -> dict[str, str]:
            return {"hash": "own", "hash_algorithm": "own"}

    (tmp_path / "a.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    file = NotebookFile(None, FileAccess(OwnHash(root_dir=str(tmp_path)), lambda: "a.ipynb"))  # type: ignore[arg-type]
    _, stamp = await file.read()
    assert await file.hash_after_read(stamp) == "own"
