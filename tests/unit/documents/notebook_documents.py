"""A ``NotebookDocument`` of a generated notebook on a store of its own, for the unit tests of
opening and reverting big notebooks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

from jupyter_cocalc_sync.documents import notebook as notebook_module
from jupyter_cocalc_sync.documents.notebook import NotebookDocument
from jupyter_cocalc_sync.store import ChangeLog, SQLiteWorker
from jupyter_cocalc_sync.store.projections import ProjectionLog

#: an autosave delay that never comes during a test
NEVER = 3600.0


def notebook_text(cells: int, output: str | None = None) -> str:
    """A notebook of ``cells`` code cells ``x = i``, each with ``output`` printed (or none)."""
    outputs = (
        [] if output is None else [{"output_type": "stream", "name": "stdout", "text": output}]
    )
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [
                {
                    "id": f"c{i}",
                    "cell_type": "code",
                    "source": f"x = {i}",
                    "metadata": {},
                    "execution_count": None if output is None else i,
                    "outputs": outputs,
                }
                for i in range(cells)
            ],
        }
    )


@contextlib.asynccontextmanager
async def notebook_document(
    tmp_path: Path, text: str, name: str = "big.ipynb"
) -> AsyncIterator[NotebookDocument]:
    """The document of ``name`` holding ``text``, not opened yet; closed after, with its
    store."""
    (tmp_path / name).write_text(text)
    worker = SQLiteWorker(tmp_path / "log.db")
    changelog = ChangeLog(worker)
    await changelog.open()
    ProjectionLog(changelog).open_blocking()
    contents = AsyncFileContentsManager(root_dir=str(tmp_path))
    settings = notebook_module.DocumentSettings(autosave_delay=NEVER, file_poll_interval=0)
    document = NotebookDocument(
        name, "nb", changelog=changelog, contents_manager=contents, settings=settings
    )
    try:
        yield document
    finally:
        await document.close()
        await changelog.settled()
        changelog.close()
        worker.close()
