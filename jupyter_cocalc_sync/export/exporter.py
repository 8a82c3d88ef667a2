"""``NotebookExporter``: nbconvert from a notebook's live state (not from its file).

The notebook is built from the live table, as autosave builds it: blobs and "more output"
re-inlined, the notebook metadata (with any saved widget state) kept — so an edit nobody
saved yet is in the export, and HTML shows images and widgets. Formats whose images nbconvert
writes as separate files (markdown, rst, latex, asciidoc with images) come as a zip of the
document and its files, as jupyter_server's own ``/nbconvert`` route does. Conversion runs in
a worker thread: nbconvert renders templates (and may run xelatex or a browser).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import nbformat

from ..documents.notebook import NotebookDocument
from ..errors import ExportFormatError, ExportToolMissingError

if TYPE_CHECKING:
    from nbconvert.exporters import Exporter
from ..format.ipynb import write_notebook
from .tools import check_tools

#: the formats served (nbconvert's own names); "ipynb" needs no nbconvert
FORMATS = (
    "asciidoc",
    "html",
    "ipynb",
    "latex",
    "markdown",
    "notebook",
    "pdf",
    "python",
    "rst",
    "script",
    "slides",
    "webpdf",
)
#: Content-Types nbconvert does not declare (or declares wrong)
MIMETYPES = {"webpdf": "application/pdf", "rst": "text/x-rst"}


@dataclass(frozen=True)
class Export:
    body: bytes
    #: the Content-Type, with a charset for text
    mimetype: str
    filename: str


class NotebookExporter:
    """Turns a live notebook into any of ``FORMATS``."""

    def formats(self) -> list[str]:
        return list(FORMATS)

    async def export(self, document: NotebookDocument, to: str) -> Export:
        """The converted notebook; ``ExportFormatError`` for an unknown format,
        ``ExportToolMissingError`` when the machine lacks what the format needs."""
        if to not in FORMATS:
            raise ExportFormatError(f"unknown export format {to!r}; one of {list(FORMATS)}")
        check_tools(to)
        base = posixpath.splitext(posixpath.basename(document.path))[0]
        notebook = await document.export_notebook()
        if to == "ipynb":
            # JSON of a big notebook, and its UTF-8: hundreds of ms for 20 MB, not on the loop
            body = await anyio.to_thread.run_sync(lambda: write_notebook(notebook).encode())
            return Export(body, "application/x-ipynb+json", f"{base}.ipynb")
        return await anyio.to_thread.run_sync(lambda: _convert(notebook, to, base))


def _convert(notebook: dict[str, Any], to: str, base: str) -> Export:
    from nbconvert.exporters import get_exporter
    from nbconvert.utils.pandoc import PandocMissing

    from .webpdf import SystemChromiumPDFExporter

    exporter: Exporter = (
        SystemChromiumPDFExporter()  # type: ignore[no-untyped-call]  # nbconvert's __init__
        if to == "webpdf"
        else get_exporter(to)()
    )
    try:
        # (nbconvert annotates the body as a NotebookNode: exporters give text, PDF ones bytes)
        converted: tuple[Any, dict[str, Any]] = exporter.from_notebook_node(
            nbformat.from_dict(notebook), {"metadata": {"name": base}}
        )
    except PandocMissing as e:
        # (asked for only when the notebook has Markdown to convert)
        raise ExportToolMissingError(
            f"to={to} needs pandoc (https://pandoc.org/installing.html, e.g. apt-get install "
            "pandoc) to convert the notebook's Markdown, and it is not installed on this "
            "server; to=html or to=markdown work without it"
        ) from e
    body: str | bytes = converted[0]
    resources = converted[1]
    extension = resources.get("output_extension") or exporter.file_extension or ""
    filename = f"{base}{extension}"
    data = body if isinstance(body, bytes) else body.encode()
    files: dict[str, bytes] = resources.get("outputs") or {}
    if files:
        return Export(_zip(filename, data, files), "application/zip", f"{base}.zip")
    mimetype = MIMETYPES.get(to) or exporter.output_mimetype or "application/octet-stream"
    if mimetype.startswith("text/") or mimetype == "application/json":
        mimetype += "; charset=utf-8"
    return Export(data, mimetype, filename)


def _zip(filename: str, body: bytes, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(filename, body)
        for name, data in files.items():
            archive.writestr(posixpath.basename(name), data)
    return buffer.getvalue()
