"""What a notebook document is given to transform outputs (built by ``formats.OutputFormats``).

The document calls these; it does not know the blob or overflow stores behind them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..format.ipynb import OutputsOf, OutputTransform
from ..sync.table import Record


@dataclass
class OutputHooks:
    """How outputs are transformed between the file, the table and JupyterLab (outputs/)."""

    #: file -> table, at import and out-of-band merges (e.g. images to blob references)
    import_output: OutputTransform | None = None
    #: table -> file, at export (e.g. blob references re-inlined); awaited before exporting
    prepare_export: Callable[[list[Record]], Awaitable[OutputsOf]] | None = None
    #: table -> JupyterLab, given the output and its cell id (e.g. "more output" as a notice)
    render_output: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    #: JupyterLab -> table
    ingest_output: Callable[[dict[str, Any]], dict[str, Any]] | None = None


class NamedDocument(Protocol):
    """A document as the hooks see it: its path and its id, read when a hook runs (a rename
    changes the path)."""

    @property
    def path(self) -> str: ...

    @property
    def file_id(self) -> str: ...
