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
replayed on the other at the same (UTF-8 byte) offsets. The YNotebook is a view: it is rebuilt
from the table when the document opens and is never stored.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from ..sync.table import ChangeEvent, Record, RecordChange, SyncDB, same_json
from ..sync.text import apply_delta, minimal_edit, set_text
from ..sync.values import from_crdt
from .ipynb import _CELL_ID, cell_order_key, cell_record, export_cell, ordered_outputs
from .schema import SETTINGS_KEY

log = logging.getLogger(__name__)

OutputFn = Callable[[dict[str, Any]], dict[str, Any]]
RenderFn = Callable[[dict[str, Any], str], dict[str, Any]]
UpdateListener = Callable[[bytes, Any], None]

#: cell record fields that live in the YNotebook cell's metadata
_METADATA_FIELDS = ("metadata", "collapsed", "scrolled", "tags")
_RUNNING_STATES = ("start", "run", "busy")


def _shown_count(record: Record) -> int | None:
    """The execution count JupyterLab is shown: none while the cell runs.

    JupyterLab takes a cell's execution count as the end of its run (it sets the shared
    ``execution_state`` back to "idle" as soon as a count arrives, hiding ``[*]``), and the
    runner knows the count from the start: it is published when the cell is done.
    """
    if record.get("state") in _RUNNING_STATES:
        return None
    return record.get("exec_count")


def _identity(output: dict[str, Any], *_: Any) -> dict[str, Any]:
    return output


def _youtput(output: dict[str, Any]) -> Map | Text:
    """One output as the YNotebook schema has it (stream text is a ``Text``)."""
    if output.get("output_type") == "stream":
        fields = {k: v for k, v in output.items() if k != "text"}
        fields["text"] = Text(output.get("text") or "")
        return Map(fields)
    return Map(output)


class YNotebookProjection:
    """A live two-way projection of a notebook table onto a YNotebook (module docstring)."""

    def __init__(
        self,
        db: SyncDB,
        *,
        render_output: RenderFn = _identity,
        ingest_output: OutputFn = _identity,
        commit: Callable[[str | None], Any] | None = None,
        state: bytes | None = None,
    ) -> None:
        self.db = db
        self.ydoc = Doc()
        self.ynotebook = YNotebook(self.ydoc)
        self.ycells: Array = self.ynotebook.ycells
        self.ymeta: Map = self.ydoc.get("meta", type=Map)
        self.ystate: Map = self.ynotebook.ystate
        self._render = render_output
        self._ingest = ingest_output
        self._commit = commit or (lambda author: db.commit())
        self._order: list[str] = []  # cell ids in YNotebook order
        # last projected outputs of the cells whose outputs changed since the build (running
        # cells, mostly): what the next change is compared with, without reading the YNotebook
        self._outputs: dict[str, list[dict[str, Any]]] = {}
        self._to_table = False  # translating YNotebook -> table (ignore the table's echo)
        self._to_ynotebook = False  # translating table -> YNotebook (ignore the YNotebook's)
        self._peer: Any = None
        self._listeners: list[UpdateListener] = []
        self._after_apply: list[Callable[[], None]] = []
        if state is None:
            self._build()
        else:
            # the same Yjs items as before: clients holding them merge instead of duplicating
            self.ydoc.apply_update(state)
            self._order = [str(c.get("id")) for c in self.ycells]
        self._unsubscribe_db = db.on_change(self._on_table_change)
        self._cells_sub = self.ycells.observe_deep(self._on_ycells)
        self._meta_sub = self.ymeta.observe_deep(self._on_ymeta)
        self._doc_sub = self.ydoc.observe(self._on_ydoc_update)

    # -- building ---------------------------------------------------------------------------

    def _cell_dict(self, record: Record) -> dict[str, Any]:
        outputs = [self._render(o, record["id"]) for o in ordered_outputs(record)]
        return export_cell(record, outputs_of=lambda _: outputs)

    def _ycell(self, record: Record) -> Map:
        cell = self._cell_dict(record)
        fields: dict[str, Any] = {
            "id": cell["id"],
            "cell_type": cell["cell_type"],
            "source": Text(cell["source"]),
            "metadata": Map(cell["metadata"]),
        }
        if cell["cell_type"] == "code":
            fields["execution_count"] = _shown_count(record)
            fields["outputs"] = Array([_youtput(o) for o in cell["outputs"]])
            fields["execution_state"] = (
                "running" if record.get("state") in _RUNNING_STATES else "idle"
            )
        elif "attachments" in cell:
            fields["attachments"] = cell["attachments"]
        return Map(fields)

    def _build(self) -> None:
        records = self.db.get()
        settings = next((r for r in records if (r["type"], r["id"]) == SETTINGS_KEY), {})
        cells = sorted((r for r in records if r["type"] == "cell"), key=cell_order_key)
        with self._writing_ynotebook():
            self.ymeta["nbformat"] = 4
            self.ymeta["nbformat_minor"] = 5
            self.ymeta["metadata"] = Map(self._notebook_metadata(settings))
            self.ycells.extend([self._ycell(r) for r in cells])
            self._order = [r["id"] for r in cells]

    @staticmethod
    def _notebook_metadata(settings: Record) -> dict[str, Any]:
        metadata = dict(settings.get("metadata") or {})
        kernel = settings.get("kernel")
        if kernel and (metadata.get("kernelspec") or {}).get("name") != kernel:
            metadata["kernelspec"] = {"name": kernel, "display_name": kernel}
        return metadata

    def reconcile(self) -> None:
        """Make a restored YNotebook equal to the table, keeping every item it can (the
        table may be ahead of it after a crash between the two logs' writes)."""
        records = {r["id"]: r for r in self.db.get({"type": "cell"})}
        wanted = [r["id"] for r in sorted(records.values(), key=cell_order_key)]
        with self._writing_ynotebook():
            settings = self.db.peek(SETTINGS_KEY) or {}
            metadata = self.ymeta.get("metadata")
            if isinstance(metadata, Map):
                self._sync_map(metadata, self._notebook_metadata(settings))
            else:
                self.ymeta["metadata"] = Map(self._notebook_metadata(settings))
            seen: set[str] = set()
            index = 0
            while index < len(self.ycells):  # cells the table lacks, duplicates, new types
                ycell = self.ycells[index]
                cell_id = ycell.get("id")
                record = records.get(cell_id)
                if (
                    record is None
                    or cell_id in seen
                    or ycell.get("cell_type") != record.get("cell_type", "code")
                ):
                    del self.ycells[index]
                    continue
                seen.add(cell_id)
                index += 1
            self._order = [str(c.get("id")) for c in self.ycells]
            rank = {cell_id: n for n, cell_id in enumerate(wanted)}
            in_place = _longest_increasing(self._order, rank)
            for cell_id in [c for c in self._order if c not in in_place]:
                self._remove(cell_id)
            for cell_id in list(self._order):
                self._project_cell(cell_id, _everything_changed(cell_id))
            for cell_id in wanted:
                if cell_id not in self._order:
                    self._insert(records[cell_id])

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _writing_ynotebook(self) -> Any:
        previous, self._to_ynotebook = self._to_ynotebook, True
        try:
            with self.ydoc.transaction():
                yield
        finally:
            self._to_ynotebook = previous

    @contextmanager
    def _writing_table(self) -> Any:
        previous, self._to_table = self._to_table, True
        try:
            with self.db.transaction():
                yield
        finally:
            self._to_table = previous

    def on_update(self, listener: UpdateListener) -> Callable[[], None]:
        """``listener(update, origin)`` for every YNotebook update (origin: the peer or None)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _on_ydoc_update(self, event: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(event.update, self._peer)
            except Exception:
                log.exception("YNotebook update listener failed")

    def apply_update(self, update: bytes, peer: Any = None) -> None:
        """Apply a JupyterLab client's update and commit what it changed in the table."""
        self._peer = peer
        try:
            self.ydoc.apply_update(update)
        finally:
            self._peer = None
        # fixes to the YNotebook itself (repaired ids) cannot happen inside its observers
        while self._after_apply:
            self._after_apply.pop(0)()
        if self.db.has_uncommitted_changes:
            self._commit(getattr(peer, "author", None))

    def set_state(self, **values: Any) -> None:
        """Set fields of the YNotebook ``state`` map (``dirty``, ``path``…)."""
        with self._writing_ynotebook():
            for key, value in values.items():
                if self.ystate.get(key) != value:
                    self.ystate[key] = value

    def close(self) -> None:
        self._unsubscribe_db()
        self.ycells.unobserve(self._cells_sub)
        self.ymeta.unobserve(self._meta_sub)
        self.ydoc.unobserve(self._doc_sub)
        self._listeners.clear()

    # -- table -> YNotebook -----------------------------------------------------------------

    def _on_table_change(self, event: ChangeEvent) -> None:
        if self._to_table:
            return
        try:
            with self._writing_ynotebook():
                for key, change in event.changes.items():
                    if key == SETTINGS_KEY:
                        self._project_settings(change)
                    elif len(key) == 2 and key[0] == "cell":
                        self._project_cell(str(key[1]), change)
        except Exception:
            log.exception("projecting a table change failed; rebuilding the cells")
            self._rebuild_cells()

    def _project_settings(self, change: RecordChange) -> None:
        if change.action == "delete" or not change.fields & {"metadata", "kernel"}:
            return
        settings = self.db.peek(SETTINGS_KEY) or {}
        self._sync_map(self.ymeta["metadata"], self._notebook_metadata(settings))

    def _index(self, cell_id: str) -> int:
        return self._order.index(cell_id)

    def _target_index(self, record: Record, without: str | None = None) -> int:
        """Where a cell with ``record``'s position belongs in the current order."""
        key = cell_order_key(record)
        order = [cid for cid in self._order if cid != without]
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            other = self.db.peek(("cell", order[mid])) or {"id": order[mid]}
            if cell_order_key(other) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _insert(self, record: Record) -> None:
        index = self._target_index(record)
        self.ycells.insert(index, self._ycell(record))
        self._order.insert(index, record["id"])

    def _remove(self, cell_id: str) -> None:
        index = self._index(cell_id)
        del self.ycells[index]
        del self._order[index]
        self._outputs.pop(cell_id, None)

    def _project_cell(self, cell_id: str, change: RecordChange) -> None:
        present = cell_id in self._order
        record = self.db.peek(("cell", cell_id))
        if change.action == "delete" or record is None:
            if present:
                self._remove(cell_id)
            return
        if not present:
            self._insert(record)
            return
        index = self._index(cell_id)
        ycell: Map = self.ycells[index]
        fields = change.fields
        if change.action == "add" or "cell_type" in fields:
            self._remove(cell_id)  # a new record, or a new cell type: a new YNotebook cell
            self._insert(record)
            return
        if "pos" in fields and self._target_index(record, without=cell_id) != index:
            self._remove(cell_id)
            self._insert(record)
            return
        if "input" in fields:
            source = ycell["source"]
            delta = change.text_deltas.get("input")
            if delta is not None and isinstance(source, Text):
                apply_delta(source, delta)
            if not isinstance(source, Text):
                ycell["source"] = Text(record.get("input", ""))
            elif str(source) != record.get("input", ""):
                set_text(source, record.get("input", ""))
        if fields & set(_METADATA_FIELDS):
            self._sync_map(ycell["metadata"], export_cell(record, lambda _: [])["metadata"])
        if record.get("cell_type", "code") == "code":
            if "state" in fields:
                state = "running" if record.get("state") in _RUNNING_STATES else "idle"
                if ycell.get("execution_state") != state:
                    ycell["execution_state"] = state
            if fields & {"exec_count", "state"}:
                count = _shown_count(record)
                if ycell.get("execution_count") != count:
                    ycell["execution_count"] = count
            if "output" in fields:
                self._project_outputs(cell_id, ycell, record, change)
        elif "attachments" in fields:
            if record.get("attachments") is None:
                if "attachments" in ycell:
                    del ycell["attachments"]
            elif not same_json(from_crdt(ycell.get("attachments")), record["attachments"]):
                ycell["attachments"] = record["attachments"]

    def _project_outputs(
        self, cell_id: str, ycell: Map, record: Record, change: RecordChange
    ) -> None:
        youtputs = ycell.get("outputs")
        old = self._outputs.get(cell_id)
        if old is None:
            old = [from_crdt(o.to_py()) for o in youtputs] if isinstance(youtputs, Array) else []
        new = self._rendered_outputs(cell_id, record, change, old)
        self._outputs[cell_id] = new
        if not isinstance(youtputs, Array):
            ycell["outputs"] = Array([_youtput(o) for o in new])
            return
        first = 0
        limit = min(len(old), len(new))
        while first < limit and same_json(old[first], new[first]):
            first += 1
        if first == len(old) == len(new):
            return
        if (
            first == len(old) - 1
            and first < len(new)
            and _same_stream(old[first], new[first])
            and isinstance(youtputs[first], Map)
            and isinstance(youtputs[first].get("text"), Text)
        ):
            # the last stream changed (grew, or a progress bar redrew its last line): only
            # the tail from the first changed character is rewritten, as a delete to the
            # end followed by an append — the form JupyterLab's stream output model applies
            _rewrite_tail(youtputs[first]["text"], old[first]["text"], new[first]["text"])
            first += 1
        elif first < len(youtputs):
            del youtputs[first:]
        youtputs.extend([_youtput(o) for o in new[first:]])

    def _rendered_outputs(
        self, cell_id: str, record: Record, change: RecordChange, old: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The cell's outputs as JupyterLab sees them; only the changed ones are rendered
        again (a flush of a long-running cell changes its last output)."""
        outputs = record.get("output") or {}
        entries = change.entries.get("output")
        dense = all(str(i) in outputs for i in range(len(outputs)))
        if entries is None or "output" in change.replaced or not dense:
            return [self._render(o, cell_id) for o in ordered_outputs(record)]
        changed = {int(k) for k in entries if k.isdigit()}
        return [
            old[i] if i < len(old) and i not in changed else self._render(outputs[str(i)], cell_id)
            for i in range(len(outputs))
        ]

    def _sync_map(self, ymap: Map, value: dict[str, Any]) -> None:
        current = from_crdt(ymap.to_py())
        for key in [k for k in current if k not in value]:
            del ymap[key]
        for key, sub in value.items():
            if key not in current or not same_json(current[key], sub):
                ymap[key] = sub

    def _rebuild_cells(self) -> None:
        with self._writing_ynotebook():
            self.ycells.clear()
            self._order.clear()
            self._outputs.clear()
            cells = sorted(self.db.get({"type": "cell"}), key=cell_order_key)
            self.ycells.extend([self._ycell(r) for r in cells])
            self._order = [r["id"] for r in cells]

    # -- YNotebook -> table -----------------------------------------------------------------

    def _on_ymeta(self, events: Iterable[Any]) -> None:
        if self._to_ynotebook:
            return
        metadata = self.ymeta.get("metadata")
        if not isinstance(metadata, Map):
            return
        value = from_crdt(metadata.to_py())
        settings = self.db.peek(SETTINGS_KEY) or {}
        old = settings.get("metadata") or {}
        patch: dict[str, Any] = {k: None for k in old if k not in value}
        patch.update({k: v for k, v in value.items() if not same_json(old.get(k), v)})
        kernel = (value.get("kernelspec") or {}).get("name")
        record: Record = {"type": SETTINGS_KEY[0], "id": SETTINGS_KEY[1]}
        if patch:
            record["metadata"] = patch
        if isinstance(kernel, str) and kernel and kernel != settings.get("kernel"):
            record["kernel"] = kernel
        if len(record) > 2:
            with self._writing_table():
                self.db.set(record)

    def _on_ycells(self, events: Iterable[Any]) -> None:
        if self._to_ynotebook:
            return
        try:
            with self._writing_table():
                events = list(events)
                fresh: set[str] = set()
                for event in events:
                    if not event.path:
                        fresh |= self._cells_changed(event)
                for event in events:
                    if event.path:
                        self._cell_content_changed(event, fresh)
        except Exception:
            log.exception("translating a JupyterLab change failed; re-reading the cells")
            self._after_apply.append(self._reconcile_table)

    def _cells_changed(self, event: Any) -> set[str]:
        """Inserts, deletes and moves of whole cells; returns the ids read in full."""
        index = 0
        removed: list[str] = []
        inserted: list[tuple[int, Map]] = []
        for op in event.delta:
            if "retain" in op:
                index += op["retain"]
            elif "delete" in op:
                removed.extend(self._order[index : index + op["delete"]])
                del self._order[index : index + op["delete"]]
            elif "insert" in op:
                for ycell in op["insert"]:
                    self._order.insert(index, "")
                    inserted.append((index, ycell))
                    index += 1
        fresh: set[str] = set()
        moved: set[str] = set()
        for index, ycell in inserted:
            cell = from_crdt(ycell.to_py())
            cell_id = cell.get("id")
            if cell_id in removed and cell_id not in moved:
                moved.add(cell_id)  # a move is a delete and an insert of the same cell
            elif (
                not isinstance(cell_id, str)
                or not _CELL_ID.match(cell_id)
                or cell_id in self._order
                or self.db.peek(("cell", cell_id)) is not None
            ):
                cell_id = uuid.uuid4().hex[:12]
                self._after_apply.append(lambda y=ycell, c=cell_id: self._set_ycell_id(y, c))
            self._order[index] = cell_id
            cell["id"] = cell_id
            if cell_id not in moved:
                self._create_record(cell)
            fresh.add(cell_id)
        for cell_id in removed:
            if cell_id not in moved:
                self.db.delete({"type": "cell", "id": cell_id})
                self._outputs.pop(cell_id, None)
        self._assign_positions(fresh)
        return fresh

    def _set_ycell_id(self, ycell: Map, cell_id: str) -> None:
        with self._writing_ynotebook():
            ycell["id"] = cell_id

    def _create_record(self, cell: dict[str, Any]) -> None:
        outputs = [self._ingest(o) for o in cell.get("outputs") or []]
        record = cell_record({**cell, "outputs": outputs})
        record.pop("pos", None)
        self.db.set(record)

    def _assign_positions(self, ids: set[str]) -> None:
        """Give the cells in ``ids`` positions between their neighbours in the new order."""
        if not ids:
            return
        positions: list[float | None] = []
        for cell_id in self._order:
            record = None if cell_id in ids else self.db.peek(("cell", cell_id))
            pos = record.get("pos") if record else None
            positions.append(pos if isinstance(pos, (int, float)) else None)
        i = 0
        updates: dict[str, float] = {}
        while i < len(self._order):
            if positions[i] is not None:
                i += 1
                continue
            j = i
            while j < len(self._order) and positions[j] is None:
                j += 1
            before = positions[i - 1] if i > 0 else None
            after = positions[j] if j < len(self._order) else None
            count = j - i
            if before is None and after is None:
                before, after = -1.0, float(count)
            elif before is None:
                before = after - count - 1
            elif after is None:
                after = before + count + 1
            step = (after - before) / (count + 1)
            for k in range(count):
                positions[i + k] = updates[self._order[i + k]] = before + step * (k + 1)
            i = j
        ordered = [p for p in positions if p is not None]
        if any(b <= a for a, b in itertools.pairwise(ordered)):
            # no room left between neighbours (or ties): renumber the whole notebook
            updates = {cell_id: float(n) for n, cell_id in enumerate(self._order)}
        for cell_id, pos in updates.items():
            self.db.set({"type": "cell", "id": cell_id, "pos": pos})

    def _cell_content_changed(self, event: Any, fresh: set[str]) -> None:
        path = event.path
        ycell = self.ycells[path[0]]
        cell_id = self._order[path[0]]
        if cell_id in fresh or not cell_id:
            return
        names = set(event.keys) if len(path) == 1 else {path[1]}
        record: Record = {"type": "cell", "id": cell_id}
        if "source" in names:
            source = ycell.get("source")
            if len(path) == 2 and isinstance(event.target, Text):
                ymap = self.db.record_map(("cell", cell_id))
                target = ymap.get("input") if ymap is not None else None
                if isinstance(target, Text):
                    apply_delta(target, event.delta)
                    if str(target) == str(source):
                        names.discard("source")
            if "source" in names:
                record["input"] = str(source) if source is not None else ""
        if "metadata" in names:
            self._metadata_patch(cell_id, ycell, record)
        if "outputs" in names:
            self._outputs_patch(cell_id, ycell, record)
        if "execution_count" in names:
            record["exec_count"] = from_crdt(ycell.get("execution_count"))
        if "attachments" in names:
            record["attachments"] = from_crdt(ycell.get("attachments"))
        if "cell_type" in names and ycell.get("cell_type") in ("code", "markdown", "raw"):
            record["cell_type"] = ycell["cell_type"]
        if len(record) > 2:
            self.db.set(record)

    def _metadata_patch(self, cell_id: str, ycell: Map, record: Record) -> None:
        ymetadata = ycell.get("metadata")
        value = from_crdt(ymetadata.to_py()) if isinstance(ymetadata, Map) else {}
        wanted = cell_record({"id": cell_id, "metadata": value, "cell_type": "raw"})
        current = self.db.peek(("cell", cell_id)) or {}
        for name in _METADATA_FIELDS:
            new, old = wanted.get(name), current.get(name)
            if name == "metadata":
                new, old = new or {}, old or {}
                patch = {k: None for k in old if k not in new}
                patch.update({k: v for k, v in new.items() if not same_json(old.get(k), v)})
                if patch:
                    record["metadata"] = patch
            elif not same_json(new, old):
                record[name] = new  # None removes it

    def _outputs_patch(self, cell_id: str, ycell: Map, record: Record) -> None:
        youtputs = ycell.get("outputs")
        shown = [from_crdt(o.to_py()) for o in youtputs] if isinstance(youtputs, Array) else []
        before = self._outputs.get(cell_id)
        if before is None:
            before = [
                self._render(o, cell_id)
                for o in ordered_outputs(self.db.peek(("cell", cell_id)) or {})
            ]
        if same_json(shown, before):
            return
        self._outputs[cell_id] = shown
        current = (self.db.peek(("cell", cell_id)) or {}).get("output") or {}
        if not shown:
            record["output"] = None
            return
        patch: dict[str, Any] = {k: None for k in current if int(k) >= len(shown)}
        patch.update({str(i): self._ingest(o) for i, o in enumerate(shown)})
        record["output"] = patch

    def _reconcile_table(self) -> None:
        """Make the table's cells match the YNotebook after a failed translation."""
        with self._writing_table():
            cells = [from_crdt(y.to_py()) for y in self.ycells]
            ids = [c.get("id") for c in cells]
            self._order = [str(i) for i in ids]
            for cell in cells:
                if isinstance(cell.get("id"), str):
                    outputs = [self._ingest(o) for o in cell.get("outputs") or []]
                    record = cell_record({**cell, "outputs": outputs})
                    record.pop("pos", None)
                    self.db.set(record)
            for record in self.db.get({"type": "cell"}):
                if record["id"] not in ids:
                    self.db.delete({"type": "cell", "id": record["id"]})
            self._assign_positions({i for i in self._order})


def _same_stream(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Two versions of one stream output (only the text differs)."""
    return (
        old.get("output_type") == new.get("output_type") == "stream"
        and isinstance(old.get("text"), str)
        and isinstance(new.get("text"), str)
        and {k: v for k, v in old.items() if k != "text"}
        == {k: v for k, v in new.items() if k != "text"}
    )


def _rewrite_tail(ytext: Text, old: str, new: str) -> None:
    """Turn ``ytext`` (equal to ``old``) into ``new`` by deleting from the first changed
    character to the end and appending the rest (pycrdt offsets are UTF-8 bytes)."""
    edit = minimal_edit(old, new)
    if edit is None:
        return
    end = len(old.encode())
    if edit.start < end:
        del ytext[edit.start : end]
    tail = new.encode()[edit.start :].decode()
    if tail:
        ytext += tail


def _everything_changed(cell_id: str) -> RecordChange:
    """A change that makes ``_project_cell`` compare every field of a cell but its place."""
    fields = {"input", "state", "exec_count", "output", "attachments", *_METADATA_FIELDS}
    return RecordChange(("cell", cell_id), "update", fields=fields, replaced={"output"})


def _longest_increasing(order: list[str], rank: dict[str, int]) -> set[str]:
    """The most cells of ``order`` that are already in the order ``rank`` wants."""
    tails: list[int] = []  # patience sorting: index in ``order`` of each pile's top
    previous: list[int] = [-1] * len(order)
    for i, cell_id in enumerate(order):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if rank[order[tails[mid]]] < rank[cell_id]:
                lo = mid + 1
            else:
                hi = mid
        previous[i] = tails[lo - 1] if lo else -1
        if lo == len(tails):
            tails.append(i)
        else:
            tails[lo] = i
    kept: set[str] = set()
    i = tails[-1] if tails else -1
    while i >= 0:
        kept.add(order[i])
        i = previous[i]
    return kept
