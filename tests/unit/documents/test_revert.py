"""``NotebookDocument.revert`` of a big change: written a chunk at a time, each chunk a version,
with the event loop serving other tasks in between; the result is the old version."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from helpers import LoopTurns
from notebook_documents import notebook_document, notebook_text

from jupyter_cocalc_sync.documents import notebook as notebook_module
from jupyter_cocalc_sync.documents.notebook import NotebookDocument
from jupyter_cocalc_sync.origin import Origin
from jupyter_cocalc_sync.sync.table import Record

ME = Origin.of_user("me")
CELLS = 100


@contextlib.asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[NotebookDocument]:
    async with notebook_document(tmp_path, notebook_text(CELLS)) as document:
        await document.open()
        yield document


def inputs(records: list[Record]) -> dict[str, str]:
    return {r["id"]: r["input"] for r in records if r["type"] == "cell"}


async def test_a_big_revert_is_written_in_chunks_while_the_loop_runs(tmp_path: Path) -> None:
    async with opened(tmp_path) as document:
        await _revert_in_chunks(document)


async def _revert_in_chunks(document: NotebookDocument) -> None:
    imported = await document.table.durable()
    before = inputs(document.records())
    await document.apply(
        [{"type": "cell", "id": f"c{i}", "input": f"edited {i}"} for i in range(CELLS)],
        [{"type": "cell", "id": "c0"}],
        origin=ME,
    )
    edited = await document.table.durable()
    async with LoopTurns() as turns:
        reverted = await document.revert(imported, ME)
    assert inputs(document.records()) == before
    chunks = -(-CELLS // notebook_module.REVERT_CHUNK)  # 99 changed and 1 deleted record
    assert reverted == edited + chunks
    assert turns.count >= chunks  # the loop ran other tasks between chunks
    assert inputs(await document.records_at(reverted)) == before
