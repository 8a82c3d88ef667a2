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

Who made a YNotebook update is the argument of the call that made it: a client's update is
applied in a YNotebook transaction made with its ``Origin`` (the reader reads it from the
events, and commits the table change as that origin's); the updates a call makes are handed
to the update listeners, with the call's origin, when the call is over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Subscription, TransactionEvent

from ..errors_seen import count_error
from ..origin import SERVER, Origin
from ..store.bases import state_vector
from ..sync.table import ChangeEvent, Record, SyncDB
from ..sync.ytypes import YArray, YMap
from .projection_state import OutputFn, ProjectionState, RenderFn
from .reader import YNotebookReader
from .writer import YNotebookWriter

log = logging.getLogger(__name__)

#: ``listener(update, origin)``: a YNotebook update, and who made it
UpdateListener = Callable[[bytes, Origin], None]
#: commits the table's pending changes as one version of the origin given
Commit = Callable[[Origin], object]


class BaseMismatchError(RuntimeError):
    """A YNotebook built again from its base's records made other items than the base."""


@dataclass(frozen=True)
class BuiltBase:
    """What a YNotebook's build made: Yjs client ``client_id``'s items up to ``clock``, as
    the first ``pieces`` updates of its first version."""

    client_id: int
    clock: int
    pieces: int


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
        client_id: int | None = None,
    ) -> None:
        self._setup(db, render_output, ingest_output, commit, client_id)
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
        client_id: int | None = None,
    ) -> None:
        self.db = db
        self.ydoc: Doc[Any] = Doc(client_id=client_id)
        self.ynotebook = YNotebook(self.ydoc)
        self.ycells: YArray = self.ynotebook.ycells
        self.ymeta: YMap = self.ydoc.get("meta", type=Map)
        self.ystate: YMap = self.ynotebook.ystate
        self._state = ProjectionState(
            db, self.ydoc, self.ycells, self.ymeta, render=render_output, ingest=ingest_output
        )
        self._writer = YNotebookWriter(self._state)
        self._reader = YNotebookReader(self._state)
        self._commit = commit or db.commit
        self._listeners: list[UpdateListener] = []
        #: YNotebook updates made by the call in progress, handed out when it is over
        self._made: list[bytes] = []
        self._calls = 0
        #: a new YNotebook's updates from its first on, until taken (``take_first_version``)
        self._first_version: list[bytes] | None = None
        self._first_version_subscription: Subscription | None = None
        #: a new YNotebook built from records: what a build of them makes again (``take_base``)
        self._base: BuiltBase | None = None

    @classmethod
    async def restored_from_base(
        cls,
        db: SyncDB,
        *,
        records: list[Record] | None,
        base: BuiltBase,
        state: bytes | None,
        render_output: RenderFn = _identity,
        ingest_output: OutputFn = _identity,
        commit: Commit | None = None,
    ) -> YNotebookProjection:
        """A YNotebook restored from its base (``store/bases.py``): built again from the
        ``records`` it was built from (None: the table's, still those), by the same Yjs client
        (the same items as then: those its clients hold), then ``state`` (what was logged
        after it) applied."""
        projection = cls.__new__(cls)
        projection._setup(db, render_output, ingest_output, commit, base.client_id)
        await projection._writer.build_in_steps(records=records)
        clock = state_vector(projection.ydoc.get_state()).get(base.client_id, 0)
        if clock != base.clock or not projection._state.render_kept_shape:
            raise BaseMismatchError(
                f"the YNotebook built again is not its base (client {base.client_id}: clock "
                f"{clock}, the store says {base.clock})"
            )
        if state is not None:
            projection.ydoc.apply_update(state)
        projection._state.order = [
            str(c.get("id")) for c in projection.ycells if isinstance(c, Map)
        ]
        projection._observe()
        return projection

    @classmethod
    async def built_in_steps(
        cls,
        db: SyncDB,
        *,
        render_output: RenderFn = _identity,
        ingest_output: OutputFn = _identity,
        commit: Commit | None = None,
        records: list[Record] | None = None,
        client_id: int | None = None,
    ) -> YNotebookProjection:
        """A new projection built a few cells per event-loop turn (a big notebook built at
        once stalls the server), then brought up to date with what changed meanwhile.
        ``records``: the table's records as they are now, if the caller has them (reading
        them back from the table costs as much as building); the list is emptied.
        ``client_id``: the YNotebook's Yjs client (random if not given): the same records
        built by the same client make the same Yjs items (``writer.py``)."""
        projection = cls.__new__(cls)
        projection._setup(db, render_output, ingest_output, commit, client_id)
        # each step's update is encoded as the step is made (a few cells): the whole new
        # YNotebook encoded at once stalls the event loop for as long as a build step of
        # every cell (pycrdt holds the GIL while it encodes)
        first: list[bytes] = []
        projection._first_version = first
        projection._first_version_subscription = projection.ydoc.observe(
            lambda event: first.append(event.update)
        )
        changed: list[ChangeEvent] = []
        unsubscribe = db.on_change(changed.append)
        built_from_records = records is not None
        try:
            await projection._writer.build_in_steps(records=records)
        finally:
            unsubscribe()
        if built_from_records and projection._state.render_kept_shape:
            clock = state_vector(projection.ydoc.get_state()).get(projection.ydoc.client_id, 0)
            projection._base = BuiltBase(projection.ydoc.client_id, clock, len(first))
        projection._observe()
        if changed:
            projection.reconcile()
        return projection

    def _observe(self) -> None:
        self._unsubscribe_db = self.db.on_change(self._on_table_change)
        self._cells_sub = self.ycells.observe_deep(self._reader.on_ycells)
        self._meta_sub = self.ymeta.observe_deep(self._reader.on_ymeta)
        self._doc_sub = self.ydoc.observe(self._on_ydoc_update)

    def take_first_version(self) -> list[bytes] | None:
        """The updates that made this new YNotebook (``built_in_steps``), in order: applied
        one after the other, the whole of it as it is now. Given out once; None for a restored
        YNotebook."""
        first, self._first_version = self._first_version, None
        self._stop_recording_first_version()
        return first

    def take_base(self) -> BuiltBase | None:
        """How this new YNotebook's build can be made again: built from the records given,
        its outputs rendered with their fields kept (a build of the same records without
        rendering makes the same items); None otherwise. Given out once."""
        base, self._base = self._base, None
        return base

    def _stop_recording_first_version(self) -> None:
        subscription, self._first_version_subscription = self._first_version_subscription, None
        if subscription is not None:
            self.ydoc.unobserve(subscription)

    def reconcile(self) -> None:
        """Make a restored YNotebook equal to the table, keeping every item it can (the
        table may be ahead of it after a crash between the two logs' writes)."""
        with self._call(SERVER):
            self._writer.reconcile()

    def on_update(self, listener: UpdateListener) -> Callable[[], None]:
        """``listener(update, origin)`` for every YNotebook update."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @contextmanager
    def _call(self, origin: Origin) -> Iterator[None]:
        """The YNotebook updates made inside are ``origin``'s: handed out at the end."""
        self._calls += 1
        try:
            yield
        finally:
            self._calls -= 1
            if not self._calls:
                self._hand_out(origin)

    def _on_ydoc_update(self, event: TransactionEvent) -> None:
        self._made.append(event.update)
        if not self._calls:  # (every change is made in a call: this is a safety net)
            self._hand_out(SERVER)

    def _hand_out(self, origin: Origin) -> None:
        made, self._made = self._made, []
        for update in made:
            for listener in list(self._listeners):
                try:
                    listener(update, origin)
                except Exception as e:  # (the other listeners still get the update)
                    what = "a YNotebook update listener"
                    count_error("projection.listener", e, what, logger=log)

    def _on_table_change(self, event: ChangeEvent) -> None:
        with self._call(event.origin):
            self._writer.on_table_change(event)

    def apply_update(self, update: bytes, origin: Origin) -> None:
        """Apply a JupyterLab client's update as ``origin``'s and commit what it changed in
        the table."""
        with self._call(origin), self.ydoc.transaction(origin=origin):
            self.ydoc.apply_update(update)
        # fixes to the YNotebook itself (repaired ids) cannot happen inside its observers;
        # they are the server's, for every client (the sender's included)
        with self._call(SERVER):
            after_apply = self._state.after_apply
            while after_apply:
                after_apply.pop(0)()
        if self.db.has_uncommitted_changes:
            self._commit(origin)

    def set_state(self, **values: Any) -> None:
        """Set fields of the YNotebook ``state`` map (``dirty``, ``path``…)."""
        with self._call(SERVER), self._state.writing_ynotebook():
            for key, value in values.items():
                if self.ystate.get(key) != value:
                    self.ystate[key] = value

    def close(self) -> None:
        self._stop_recording_first_version()
        self._first_version = None
        self._unsubscribe_db()
        self.ycells.unobserve(self._cells_sub)
        self.ymeta.unobserve(self._meta_sub)
        self.ydoc.unobserve(self._doc_sub)
        self._listeners.clear()
