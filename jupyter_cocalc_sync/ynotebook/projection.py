"""``YNotebookProjection``: the notebook table seen as a ``jupyter_ydoc.YNotebook``.

The stock JupyterLab RTC frontend speaks YNotebook (a ``cells`` Array of Maps). The notebook
itself is the SyncDB table; this module keeps a YNotebook document equal to it, both ways:

* table → YNotebook: every change of the table (the runner's outputs, REST and SyncDB clients)
  is written into the YNotebook: text edits as text edits, cell inserts/deletes/moves, outputs
  (appended, or the changed tail rewritten — the frontend appends every inserted output, so a
  change in the middle is done by deleting from there and appending again), metadata, counts
  and execution state;
* YNotebook → table: what JupyterLab users do (typing, adding, deleting, moving cells, metadata,
  clearing outputs) becomes table changes, committed under the user's name.

Both documents are equal before and after every event, so a text delta observed on one side is
replayed on the other at the same (UTF-8 byte) offsets. The YNotebook is a view, but its Yjs
items are what JupyterLab clients hold: the document logs its updates and restores it from
that log (``state``), reconciled with the table when the two logs disagree.

This class is the wiring: ``YNotebookWriter`` (``writer``) follows the table's change
events, ``YNotebookReader`` (``reader``) the YNotebook's deep events, and both share
one ``ProjectionState`` (the cell order, the outputs last shown, the echo guards).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, TransactionEvent

from ..errors_seen import count_error
from ..sync.table import ChangeEvent, SyncDB
from ..sync.ytypes import YArray, YMap
from .projection_state import OutputFn, ProjectionState, RenderFn
from .reader import YNotebookReader
from .writer import YNotebookWriter

if TYPE_CHECKING:
    from ..transport.room import Peer

log = logging.getLogger(__name__)

#: ``listener(update, peer)``: the peer whose update it is, None for the server's own
UpdateListener = Callable[[bytes, "Peer | None"], None]
#: commits the table's pending changes as one version by the author given
Commit = Callable[[str | None], object]


def _identity(output: dict[str, Any], *_: Any) -> dict[str, Any]:
    return output


class YNotebookProjection:
    """A live two-way projection of a notebook table onto a YNotebook (module docstring)."""

    def __init__(
        self,
        db: SyncDB,
        *,
        render_output: RenderFn = _identity,
        ingest_output: OutputFn = _identity,
        commit: Commit | None = None,
        state: bytes | None = None,
    ) -> None:
        self._setup(db, render_output, ingest_output, commit)
        if state is None:
            self._writer.build()
        else:
            # the same Yjs items as before: clients holding them merge instead of duplicating
            self.ydoc.apply_update(state)
            self._state.order = [str(c.get("id")) for c in self.ycells if isinstance(c, Map)]
        self._observe()

    def _setup(
        self,
        db: SyncDB,
        render_output: RenderFn,
        ingest_output: OutputFn,
        commit: Commit | None,
    ) -> None:
        self.db = db
        self.ydoc: Doc[Any] = Doc()
        self.ynotebook = YNotebook(self.ydoc)
        self.ycells: YArray = self.ynotebook.ycells
        self.ymeta: YMap = self.ydoc.get("meta", type=Map)
        self.ystate: YMap = self.ynotebook.ystate
        self._state = ProjectionState(
            db, self.ydoc, self.ycells, self.ymeta, render=render_output, ingest=ingest_output
        )
        self._writer = YNotebookWriter(self._state)
        self._reader = YNotebookReader(self._state)
        self._commit = commit or (lambda author: db.commit())
        self._peer: Peer | None = None
        self._listeners: list[UpdateListener] = []

    @classmethod
    async def built_in_steps(
        cls,
        db: SyncDB,
        *,
        render_output: RenderFn = _identity,
        ingest_output: OutputFn = _identity,
        commit: Commit | None = None,
    ) -> YNotebookProjection:
        """A new projection built a few cells per event-loop turn (a big notebook built at
        once stalls the server), then brought up to date with what changed meanwhile."""
        projection = cls.__new__(cls)
        projection._setup(db, render_output, ingest_output, commit)
        changed: list[ChangeEvent] = []
        unsubscribe = db.on_change(changed.append)
        try:
            await projection._writer.build_in_steps()
        finally:
            unsubscribe()
        projection._observe()
        if changed:
            projection.reconcile()
        return projection

    def _observe(self) -> None:
        self._unsubscribe_db = self.db.on_change(self._writer.on_table_change)
        self._cells_sub = self.ycells.observe_deep(self._reader.on_ycells)
        self._meta_sub = self.ymeta.observe_deep(self._reader.on_ymeta)
        self._doc_sub = self.ydoc.observe(self._on_ydoc_update)

    def reconcile(self) -> None:
        """Make a restored YNotebook equal to the table, keeping every item it can (the
        table may be ahead of it after a crash between the two logs' writes)."""
        self._writer.reconcile()

    def on_update(self, listener: UpdateListener) -> Callable[[], None]:
        """``listener(update, origin)`` for every YNotebook update (origin: the peer or None)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _on_ydoc_update(self, event: TransactionEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event.update, self._peer)
            except Exception as e:  # (the other listeners still get the update)
                count_error("projection.listener", e, "a YNotebook update listener", logger=log)

    def apply_update(self, update: bytes, peer: Peer | None = None) -> None:
        """Apply a JupyterLab client's update and commit what it changed in the table."""
        self._peer = peer
        try:
            self.ydoc.apply_update(update)
        finally:
            self._peer = None
        # fixes to the YNotebook itself (repaired ids) cannot happen inside its observers
        after_apply = self._state.after_apply
        while after_apply:
            after_apply.pop(0)()
        if self.db.has_uncommitted_changes:
            self._commit(peer.author if peer is not None else None)

    def set_state(self, **values: Any) -> None:
        """Set fields of the YNotebook ``state`` map (``dirty``, ``path``…)."""
        with self._state.writing_ynotebook():
            for key, value in values.items():
                if self.ystate.get(key) != value:
                    self.ystate[key] = value

    def close(self) -> None:
        self._unsubscribe_db()
        self.ycells.unobserve(self._cells_sub)
        self.ymeta.unobserve(self._meta_sub)
        self.ydoc.unobserve(self._doc_sub)
        self._listeners.clear()
