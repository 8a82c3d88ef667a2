"""``YNotebookReader``: YNotebook → table, the other half of ``YNotebookProjection``.

What JupyterLab users do (typing, adding, deleting, moving cells, metadata, clearing outputs)
arrives as YNotebook events and becomes table changes, committed under the user's name. A text
delta is replayed on the table's text at the same (UTF-8 byte) offsets, since both documents are
equal before the event.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

from pycrdt import Array, Map, Text

from ..errors_seen import count_error
from ..format.ipynb import _CELL_ID, cell_record, ordered_outputs
from ..format.schema import SETTINGS_KEY
from ..origin import Origin
from ..sync.table import Record, same_json
from ..sync.text import apply_delta
from ..sync.values import from_crdt
from ..sync.ytypes import DeepEvent, YMap, deep_events, origin_of
from .projection_state import METADATA_FIELDS, ProjectionState

log = logging.getLogger(__name__)

#: the keys of a YNotebook cell that the record keeps
_CELL_KEYS = ("source", "metadata", "outputs", "execution_count", "attachments", "cell_type")


class YNotebookReader:
    """Turns JupyterLab's YNotebook events into table changes (module docstring)."""

    def __init__(self, state: ProjectionState) -> None:
        self.state = state
        self.db = state.db
        self.ycells = state.ycells
        self.ymeta = state.ymeta

    def on_ymeta(self, events: Sequence[object]) -> None:
        """Notebook metadata edited in JupyterLab: patch the settings record."""
        if self.state.to_ynotebook:
            return
        value = from_crdt(self.ymeta.get("metadata"))
        if not isinstance(value, dict):
            return
        settings = self.db.peek(SETTINGS_KEY) or {}
        patch = _object_patch(settings.get("metadata") or {}, value)
        kernelspec = value.get("kernelspec")
        kernel = kernelspec.get("name") if isinstance(kernelspec, dict) else None
        record: Record = {"type": SETTINGS_KEY[0], "id": SETTINGS_KEY[1]}
        if patch:
            record["metadata"] = patch
        if isinstance(kernel, str) and kernel and kernel != settings.get("kernel"):
            record["kernel"] = kernel
        if len(record) > 2:
            origin = origin_of(deep_events(events))
            with self.state.writing_table(origin):
                self.db.set(record, origin)

    def on_ycells(self, events: Sequence[object]) -> None:
        """Cells edited in JupyterLab: the same edits in the table."""
        if self.state.to_ynotebook:
            return
        changes = deep_events(events)
        origin = origin_of(changes)
        try:
            with self.state.writing_table(origin):
                fresh: set[str] = set()
                reinserted: list[tuple[str, YMap]] = []
                for event in changes:
                    if not event.path:
                        fresh |= self._cells_changed(event, reinserted, origin)
                for event in changes:
                    if event.path:
                        self._cell_content_changed(event, fresh, origin)
                for cell_id, ycell in reinserted:
                    self._patch_cell(cell_id, ycell, set(_CELL_KEYS), origin)
        except Exception as e:
            # The YNotebook has the change already, whatever failed here (a bug of ours, seen
            # in the log and the status): the table is brought in line with it.
            count_error(
                "projection.from_jupyterlab", e, "translating a JupyterLab change", logger=log
            )
            self.state.after_apply.append(partial(self._reconcile_table, origin))

    def _cells_changed(
        self, event: DeepEvent, reinserted: list[tuple[str, YMap]], origin: Origin
    ) -> set[str]:
        """Inserts, deletes and moves of whole cells; returns the ids read in full (the cells
        deleted and inserted again go to ``reinserted``)."""
        index = 0
        removed: list[str] = []
        inserted: list[tuple[int, object]] = []
        for op in event.delta:
            if "retain" in op:
                index += op["retain"]
            elif "delete" in op:
                removed.extend(self.state.order[index : index + op["delete"]])
                del self.state.order[index : index + op["delete"]]
            elif "insert" in op:
                for ycell in op["insert"]:
                    self.state.order.insert(index, "")
                    inserted.append((index, ycell))
                    index += 1
        fresh: set[str] = set()
        moved: set[str] = set()
        for index, ycell in inserted:
            cell = from_crdt(ycell)
            cell_id = cell.get("id")
            if cell_id in removed and cell_id not in moved and isinstance(ycell, Map):
                # a move is a delete and an insert of the same cell, and so is JupyterLab's
                # change of cell type: the new cell's content is compared with the record's
                # (a cell is a map: the room's guard lets nothing else in)
                moved.add(cell_id)
                reinserted.append((cell_id, ycell))
            elif (
                not isinstance(cell_id, str)
                or not _CELL_ID.match(cell_id)
                or cell_id in self.state.order
                or self.db.peek(("cell", cell_id)) is not None
            ):
                cell_id = uuid.uuid4().hex[:12]
                if isinstance(ycell, Map):  # (the room's guard lets only maps in)
                    self.state.after_apply.append(partial(self._set_ycell_id, ycell, cell_id))
            self.state.order[index] = cell_id
            cell["id"] = cell_id
            if cell_id not in moved:
                self._create_record(cell, origin)
            fresh.add(cell_id)
        for cell_id in removed:
            if cell_id not in moved:
                self.db.delete({"type": "cell", "id": cell_id}, origin)
                self.state.outputs.pop(cell_id, None)
        self._assign_positions(fresh, origin)
        return fresh

    def _set_ycell_id(self, ycell: YMap, cell_id: str) -> None:
        with self.state.writing_ynotebook():
            ycell["id"] = cell_id

    def _create_record(self, cell: dict[str, Any], origin: Origin) -> None:
        outputs = [self.state.ingest(o) for o in cell.get("outputs") or []]
        record = cell_record({**cell, "outputs": outputs})
        record.pop("pos", None)
        self.db.set(record, origin)

    def _assign_positions(self, ids: set[str], origin: Origin) -> None:
        """Give the cells in ``ids`` positions between their neighbours in the new order."""
        if not ids:
            return
        positions: list[float | None] = []
        for cell_id in self.state.order:
            record = None if cell_id in ids else self.db.peek(("cell", cell_id))
            pos = record.get("pos") if record else None
            positions.append(pos if isinstance(pos, (int, float)) else None)
        i = 0
        updates: dict[str, float] = {}
        while i < len(self.state.order):
            if positions[i] is not None:
                i += 1
                continue
            j = i
            while j < len(self.state.order) and positions[j] is None:
                j += 1
            before = positions[i - 1] if i > 0 else None
            after = positions[j] if j < len(self.state.order) else None
            count = j - i
            if before is None:
                before = -1.0 if after is None else after - count - 1
            if after is None:
                after = before + count + 1
            step = (after - before) / (count + 1)
            for k in range(count):
                positions[i + k] = updates[self.state.order[i + k]] = before + step * (k + 1)
            i = j
        ordered = [p for p in positions if p is not None]
        if any(b <= a for a, b in itertools.pairwise(ordered)):
            # no room left between neighbours (or ties): renumber the whole notebook
            updates = {cell_id: float(n) for n, cell_id in enumerate(self.state.order)}
        for cell_id, pos in updates.items():
            self.db.set({"type": "cell", "id": cell_id, "pos": pos}, origin)

    def _cell_content_changed(self, event: DeepEvent, fresh: set[str], origin: Origin) -> None:
        path = event.path
        index = path[0]
        if not isinstance(index, int):
            raise TypeError(f"a change under cells at {path}: not a cell index")
        ycell = self.ycells[index]
        cell_id = self.state.order[index]
        if cell_id in fresh or not cell_id:
            return
        if not isinstance(ycell, Map):  # (the room's guard lets only maps in)
            raise TypeError(f"cell {index} of the YNotebook is not a map")
        names = set(event.keys) if len(path) == 1 else {str(path[1])}
        if "source" in names and len(path) == 2 and isinstance(event.target, Text):
            ymap = self.db.record_map(("cell", cell_id))
            target = ymap.get("input") if ymap is not None else None
            if isinstance(target, Text):
                apply_delta(target, event.delta)
                if str(target) == str(ycell.get("source")):
                    names.discard("source")
        self._patch_cell(cell_id, ycell, names, origin)

    def _patch_cell(self, cell_id: str, ycell: YMap, names: set[str], origin: Origin) -> None:
        """Bring the fields ``names`` of the cell's record up to what ``ycell`` holds."""
        record: Record = {"type": "cell", "id": cell_id}
        if "source" in names:
            source = ycell.get("source")
            text = str(source) if source is not None else ""
            if text != (self.db.peek(("cell", cell_id)) or {}).get("input", ""):
                record["input"] = text
        if "metadata" in names:
            self._metadata_patch(cell_id, ycell, record)
        if "outputs" in names:
            self._outputs_patch(cell_id, ycell, record)
        if "execution_count" in names:
            record["exec_count"] = from_crdt(ycell.get("execution_count"))
        if "attachments" in names:
            self._attachments_patch(cell_id, ycell, record)
        if "cell_type" in names and ycell.get("cell_type") in ("code", "markdown", "raw"):
            record["cell_type"] = ycell["cell_type"]
        if len(record) > 2:
            self.db.set(record, origin)

    def _attachments_patch(self, cell_id: str, ycell: YMap, record: Record) -> None:
        """The attachments as the cell has them now (``set`` merges objects one level deep:
        the names no longer there are deleted by name)."""
        value = from_crdt(ycell.get("attachments"))
        old = (self.db.peek(("cell", cell_id)) or {}).get("attachments")
        if not isinstance(value, dict) or not isinstance(old, dict):
            if not same_json(value, old):
                record["attachments"] = value  # None removes them
        elif patch := _object_patch(old, value):
            record["attachments"] = patch

    def _metadata_patch(self, cell_id: str, ycell: YMap, record: Record) -> None:
        value = from_crdt(ycell.get("metadata"))
        if not isinstance(value, dict):
            value = {}
        wanted = cell_record({"id": cell_id, "metadata": value, "cell_type": "raw"})
        current = self.db.peek(("cell", cell_id)) or {}
        for name in METADATA_FIELDS:
            new, old = wanted.get(name), current.get(name)
            if name == "metadata":
                new, old = new or {}, old or {}
            if isinstance(new, dict) and isinstance(old, dict):
                # ``set`` merges objects one level deep: what went is deleted by name
                if patch := _object_patch(old, new):
                    record[name] = patch
            elif not same_json(new, old):
                record[name] = new  # None removes it

    def _outputs_patch(self, cell_id: str, ycell: YMap, record: Record) -> None:
        youtputs = ycell.get("outputs")
        shown = [from_crdt(o) for o in youtputs] if isinstance(youtputs, Array) else []
        before = self.state.outputs.get(cell_id)
        if before is None:
            before = [
                self.state.render(o, cell_id)
                for o in ordered_outputs(self.db.peek(("cell", cell_id)) or {})
            ]
        if same_json(shown, before):
            return
        self.state.outputs[cell_id] = shown
        current = (self.db.peek(("cell", cell_id)) or {}).get("output") or {}
        if not shown:
            record["output"] = None
            return
        patch: dict[str, Any] = {k: None for k in current if int(k) >= len(shown)}
        patch.update({str(i): self.state.ingest(o) for i, o in enumerate(shown)})
        record["output"] = patch

    def _reconcile_table(self, origin: Origin) -> None:
        """Make the table's cells match the YNotebook after a failed translation."""
        with self.state.writing_table(origin):
            cells = [from_crdt(y) for y in self.ycells]
            ids = [c.get("id") for c in cells]
            self.state.order = [str(i) for i in ids]
            for cell in cells:
                if isinstance(cell.get("id"), str):
                    outputs = [self.state.ingest(o) for o in cell.get("outputs") or []]
                    record = cell_record({**cell, "outputs": outputs})
                    record.pop("pos", None)
                    self.db.set(record, origin)
            for record in self.db.get({"type": "cell"}):
                if record["id"] not in ids:
                    self.db.delete({"type": "cell", "id": record["id"]}, origin)
            self._assign_positions({i for i in self.state.order}, origin)


def _object_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The ``set`` patch that turns the object ``old`` into ``new``: changed keys with their
    new values, removed ones with None (``set`` merges objects one level deep)."""
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    patch.update({k: v for k, v in new.items() if not same_json(old.get(k), v)})
    return patch
