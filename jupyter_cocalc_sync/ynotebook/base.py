"""The YNotebook a based projection log starts from, built where the store is replayed.

A new YNotebook built from a notebook's imported records is not logged: the store records it
as a base (``store/bases.py``), and whoever replays the projection's log builds it again.
In the replay process there are no output hooks, so the build here shows outputs as the
table stores them; a base is only recorded when rendering kept every output's fields
(``YNotebookProjection.take_base``), so this build makes the same Yjs items, only some
values (an image inlined or a reference) differ, and those items are never written from
here (``bases.relative_state``). It runs the projection's own writer on the YNotebook's root
types, without ``jupyter_ydoc`` (the replay process imports only what it runs).
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map

from ..format.schema import notebook_syncdb
from ..origin import STORE
from .projection_state import ProjectionState
from .writer import YNotebookWriter

#: the name the store knows this build by (``store/bases.py``: ``BUILDERS``)
YNOTEBOOK_BUILDER = "ynotebook/1"


def _as_stored(output: dict[str, Any], *_: Any) -> dict[str, Any]:
    return output


def canonical_ynotebook(table_state: bytes, client_id: int) -> Doc[Any]:
    """The YNotebook of the table ``table_state`` (one update), built by ``client_id``."""
    db = notebook_syncdb()
    db.apply_update(table_state, STORE)
    doc: Doc[Any] = Doc(client_id=client_id)
    cells, meta = doc.get("cells", type=Array), doc.get("meta", type=Map)
    state = ProjectionState(db, doc, cells, meta, render=_as_stored, ingest=_as_stored)
    YNotebookWriter(state).build()
    db.close()
    return doc
