"""``NotebookFile`` over jupyter_server's file contents manager (no server): opening reads a
notebook once, and knows its hash from that read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

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
