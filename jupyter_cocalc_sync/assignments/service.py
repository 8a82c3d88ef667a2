"""``AssignmentService``: nbgrader operations on live notebooks (student version, tampering)."""

from __future__ import annotations

import posixpath
from typing import Any, Protocol

import anyio
import nbformat
from jupyter_core.utils import ensure_async

from ..documents.following import Contents
from ..documents.notebook import NotebookDocument
from ..errors import TargetExistsError
from .student import student_version, tampered_cells


class Documents(Protocol):
    async def get(self, path: str) -> NotebookDocument: ...


def default_target(path: str) -> str:
    """Where nbgrader would release ``path``: ``source/…`` → ``release/…``, else under
    ``release/``."""
    parts = path.split("/")
    if parts[0] == "source" and len(parts) > 1:
        parts = parts[1:]
    return posixpath.join("release", *parts)


class AssignmentService:
    def __init__(self, documents: Documents, contents_manager: Contents) -> None:
        self.documents = documents
        self.contents = contents_manager

    async def write_student_version(self, path: str, target: str) -> dict[str, Any]:
        """Write the student version of the live notebook ``path`` to the new file ``target``
        (its folders are created); ``TargetExistsError`` if it exists."""
        document = await self.documents.get(path)
        notebook = await document.export_notebook()
        student = await anyio.to_thread.run_sync(lambda: student_version(notebook))
        if await ensure_async(self.contents.exists(target)):
            raise TargetExistsError(f"{target} exists; give another target or delete it first")
        await self._make_folders(posixpath.dirname(target))
        model = {"type": "notebook", "format": "json", "content": nbformat.from_dict(student)}
        await ensure_async(self.contents.save(model, target))
        locked = [c for c in student["cells"] if "checksum" in c["metadata"].get("nbgrader", {})]
        return {"path": target, "cells": len(student["cells"]), "checksums": len(locked)}

    async def tampered(self, path: str) -> dict[str, Any]:
        """The cells of the live notebook ``path`` whose nbgrader checksum does not match."""
        document = await self.documents.get(path)
        notebook = await document.export_notebook()
        found = await anyio.to_thread.run_sync(lambda: tampered_cells(notebook))
        return {"path": path, "tampered": found}

    async def _make_folders(self, folder: str) -> None:
        if not folder or await ensure_async(self.contents.dir_exists(folder)):
            return
        await self._make_folders(posixpath.dirname(folder))
        await ensure_async(self.contents.save({"type": "directory"}, folder))
