"""``NotebookExporter``: nbconvert from a notebook's live state (not from its file)."""

from __future__ import annotations

import posixpath
from typing import Any

import anyio
import nbformat

from ..errors import ExportFormatError
from .document import NotebookDocument
from .ipynb import write_notebook


class NotebookExporter:
    """Turns a live notebook into any nbconvert format (``ipynb`` without nbconvert)."""

    def formats(self) -> list[str]:
        from nbconvert.exporters import get_export_names

        return sorted(set(get_export_names()) | {"ipynb"})

    async def export(self, document: NotebookDocument, to: str) -> tuple[str | bytes, str, str]:
        """``(body, mimetype, filename)``; ``ExportFormatError`` for an unknown format."""
        base = posixpath.splitext(posixpath.basename(document.path))[0]
        notebook = await document.export_notebook()
        if to == "ipynb":
            # JSON of a big notebook, and its UTF-8: hundreds of ms for 20 MB, not on the loop
            body = await anyio.to_thread.run_sync(lambda: write_notebook(notebook).encode())
            return body, "application/x-ipynb+json", f"{base}.ipynb"
        from nbconvert.exporters import get_export_names, get_exporter

        if to not in get_export_names():
            raise ExportFormatError(f"unknown export format {to!r}; one of {self.formats()}")
        exporter = get_exporter(to)()
        # nbconvert renders templates and runs preprocessors: seconds of CPU for big notebooks
        body, resources = await anyio.to_thread.run_sync(
            lambda: exporter.from_notebook_node(nbformat.from_dict(notebook))
        )
        extension = resources.get("output_extension") or exporter.file_extension or ""
        mimetype: Any = exporter.output_mimetype or "application/octet-stream"
        return body, mimetype, f"{base}{extension}"
