"""What the two directions of the YNotebook projection share.

``YNotebookWriter`` (table → YNotebook) and ``YNotebookReader`` (YNotebook → table) keep one
view of the YNotebook between them: the cell order, the outputs last shown, and the two guards
that let each side ignore the echo of the other's writes. They receive it explicitly as one
``ProjectionState`` rather than reaching into each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc

from ..origin import Origin
from ..sync.table import SyncDB
from ..sync.ytypes import YArray, YMap

#: an output as the table stores it -> as JupyterLab is shown it ("more output" as a notice,
#: blobs inlined), and back
RenderFn = Callable[[dict[str, Any], str], dict[str, Any]]
OutputFn = Callable[[dict[str, Any]], dict[str, Any]]

#: cell record fields that live in the YNotebook cell's metadata
METADATA_FIELDS = ("metadata", "collapsed", "scrolled", "tags")


@dataclass
class ProjectionState:
    """The two documents and the bookkeeping both directions of the projection read and write."""

    db: SyncDB
    ydoc: Doc[Any]
    ycells: YArray
    ymeta: YMap
    render: RenderFn
    ingest: OutputFn
    #: cell ids in YNotebook order
    order: list[str] = field(default_factory=list)
    #: last projected outputs of the cells whose outputs changed since the build (running
    #: cells, mostly): what the next change is compared with, without reading the YNotebook
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: translating YNotebook -> table (ignore the table's echo)
    to_table: bool = False
    #: translating table -> YNotebook (ignore the YNotebook's)
    to_ynotebook: bool = False
    #: work the reader leaves for after the client's update is applied (``apply_update``)
    after_apply: list[Callable[[], None]] = field(default_factory=list)
    #: every output rendered so far has the fields of the table's (with a stream's text): a
    #: build from the table's records without rendering makes the same Yjs items
    render_kept_shape: bool = True

    @contextmanager
    def writing_ynotebook(self) -> Iterator[None]:
        """One YNotebook transaction whose events the reader ignores."""
        previous, self.to_ynotebook = self.to_ynotebook, True
        try:
            with self.ydoc.transaction():
                yield
        finally:
            self.to_ynotebook = previous

    @contextmanager
    def writing_table(self, origin: Origin) -> Iterator[None]:
        """One table transaction of ``origin`` whose change events the writer ignores."""
        previous, self.to_table = self.to_table, True
        try:
            with self.db.transaction(origin):
                yield
        finally:
            self.to_table = previous
