"""``NotebookDocument.revert`` of a big change: written a chunk at a time, each chunk a version,
with the event loop serving other tasks in between; the result is the old version."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

from jupyter_cocalc_sync.documents import notebook as notebook_module
from jupyter_cocalc_sync.documents.notebook import NotebookDocument
from jupyter_cocalc_sync.origin import Origin
from jupyter_cocalc_sync.store import ChangeLog, SQLiteWorker
from jupyter_cocalc_sync.store.projections import ProjectionLog
from jupyter_cocalc_sync.sync.table import Record

ME = Origin.of_user("me")
CELLS = 100
NEVER = 3600.0


def notebook_text() -> str:
    cells = [
        {
            "id": f"c{i}",
            "cell_type": "code",
            "source": f"x = {i}",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
        }
        for i in range(CELLS)
    ]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})


@contextlib.asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[NotebookDocument]:
    (tmp_path / "big.ipynb").write_text(notebook_text())
    worker = SQLiteWorker(tmp_path / "log.db")
    changelog = ChangeLog(worker)
    await changelog.open()
    ProjectionLog(changelog).open_blocking()
    contents = AsyncFileContentsManager(root_dir=str(tmp_path))
    settings = notebook_module.DocumentSettings(autosave_delay=NEVER, file_poll_interval=0)
    document = NotebookDocument(
        "big.ipynb", "nb", changelog=changelog, contents_manager=contents, settings=settings
    )
    await document.open()
    try:
        yield document
    finally:
        await document.close()
    await changelog.settled()
    changelog.close()
    worker.close()


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
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(other_task())
    reverted = await document.revert(imported, ME)
    task.cancel()
    assert inputs(document.records()) == before
    chunks = -(-CELLS // notebook_module.REVERT_CHUNK)  # 99 changed and 1 deleted record
    assert reverted == edited + chunks
    assert turns >= chunks  # the loop ran other tasks between chunks
    assert inputs(await document.records_at(reverted)) == before
