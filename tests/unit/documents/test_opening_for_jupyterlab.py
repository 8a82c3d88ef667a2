"""Opening a notebook for a JupyterLab client (``NotebookDocument.open(ynotebook=True)``): its
YNotebook is built from the imported records while the import's log write is in flight, and is
the table's YNotebook when taken."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from notebook_documents import notebook_document, notebook_text

from jupyter_cocalc_sync.documents.notebook import NotebookDocument
from jupyter_cocalc_sync.origin import Origin
from jupyter_cocalc_sync.store.changelog import INLINE_BYTES
from jupyter_cocalc_sync.ynotebook.projection import YNotebookProjection

ME = Origin.of_user("me")
CELLS = 60
#: outputs big enough that the import is written by the store's thread, not inline
OUTPUT = "x" * (2 * INLINE_BYTES // CELLS)


@contextlib.asynccontextmanager
async def unopened(tmp_path: Path) -> AsyncIterator[NotebookDocument]:
    async with notebook_document(tmp_path, notebook_text(CELLS, OUTPUT)) as document:
        try:
            yield document
        finally:
            document.drop_ynotebook()


async def test_the_ynotebook_is_built_while_the_import_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_when_built: list[bool] = []
    build = YNotebookProjection.built_in_steps.__func__  # type: ignore[attr-defined]

    async def recording(cls: type[YNotebookProjection], db: Any, **kwargs: Any) -> Any:
        barrier = document.table.barrier()
        written_when_built.append(barrier is None or barrier.done())
        return await build(cls, db, **kwargs)

    monkeypatch.setattr(YNotebookProjection, "built_in_steps", classmethod(recording))
    async with unopened(tmp_path) as document:
        await document.open(ynotebook=True)
        projection = await document.take_ynotebook()
        assert written_when_built == [False]
        assert projection is not None
        from_table = await YNotebookProjection.built_in_steps(document.db)
        assert projection.ynotebook.get() == from_table.ynotebook.get()
        assert len(projection.ycells) == CELLS
        assert await document.take_ynotebook() is None  # given out once
        projection.close()
        from_table.close()


async def test_the_ynotebook_built_while_opening_follows_the_table_until_it_is_taken(
    tmp_path: Path,
) -> None:
    async with unopened(tmp_path) as document:
        await document.open(ynotebook=True)
        await document.apply([{"type": "cell", "id": "c3", "input": "edited"}], origin=ME)
        projection = await document.take_ynotebook()
        assert projection is not None
        assert str(projection.ycells[3]["source"]) == "edited"
        projection.close()


async def test_a_ynotebook_nobody_took_stops_following_the_table(tmp_path: Path) -> None:
    async with unopened(tmp_path) as document:
        await document.open(ynotebook=True)
        building = document._ynotebook
        assert building is not None
        projection = await building
        document.drop_ynotebook()
        await document.apply([{"type": "cell", "id": "c3", "input": "edited"}], origin=ME)
        assert str(projection.ycells[3]["source"]) == "x = 3"
        assert await document.take_ynotebook() is None


async def test_a_plain_open_builds_no_ynotebook(tmp_path: Path) -> None:
    async with unopened(tmp_path) as document:
        await document.open()
        assert await document.take_ynotebook() is None


@pytest.mark.parametrize("ynotebook", [False, True])
async def test_opening_a_notebook_asks_for_no_save_and_an_edit_does(
    tmp_path: Path, ynotebook: bool
) -> None:
    # the import is what the file holds: an autosave it asked for, coming before the import
    # was durable, found the notebook unsaved and rewrote the file it was just read from
    async with unopened(tmp_path) as document:
        asked: list[str] = []
        document.files.changed = lambda: asked.append("save")  # type: ignore[method-assign]
        await document.open(ynotebook=ynotebook)
        assert asked == []
        await document.apply([{"type": "cell", "id": "c3", "input": "edited"}], origin=ME)
        assert asked == ["save"]
