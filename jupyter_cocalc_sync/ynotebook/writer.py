"""``YNotebookWriter``: table → YNotebook, one half of ``YNotebookProjection``.

Every change of the table (the runner's outputs, REST and SyncDB clients) is written into the
YNotebook: text edits as text edits, cell inserts/deletes/moves, outputs (appended, or the
changed tail rewritten — the frontend appends every inserted output, so a change in the middle
is done by deleting from there and appending again), metadata, counts and execution state. It
also builds the YNotebook from the table, and makes a restored one equal to the table again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from pycrdt import Array, Map, Text

from ..errors_seen import count_error
from ..format.ipynb import cell_order_key, export_cell, ordered_outputs
from ..format.schema import SETTINGS_KEY
from ..sync.table import ChangeEvent, Record, RecordChange, same_json
from ..sync.text import apply_delta, minimal_edit, set_text
from ..sync.values import from_crdt, map_from_crdt
from ..sync.ytypes import YMap
from .projection_state import METADATA_FIELDS, ProjectionState

log = logging.getLogger(__name__)

_RUNNING_STATES = ("start", "run", "busy")
#: cells built per event-loop turn when a YNotebook is first built
BUILD_STEP = 25


def _shown_count(record: Record) -> int | None:
    """The execution count JupyterLab is shown: none while the cell runs.

    JupyterLab takes a cell's execution count as the end of its run (it sets the shared
    ``execution_state`` back to "idle" as soon as a count arrives, hiding ``[*]``), and the
    runner knows the count from the start: it is published when the cell is done.
    """
    if record.get("state") in _RUNNING_STATES:
        return None
    return record.get("exec_count")


def _youtput(output: dict[str, Any]) -> YMap:
    """One output as the YNotebook schema has it (stream text is a ``Text``)."""
    if output.get("output_type") == "stream":
        fields = {k: v for k, v in output.items() if k != "text"}
        fields["text"] = Text(output.get("text") or "")
        return _canonical_map(fields)
    return _canonical_map(output)


def _canonical_map(fields: dict[str, Any]) -> YMap:
    """A new ``Map`` whose entries are made in key order: each entry is a Yjs item, numbered
    in the order it is made, so the same content always gets the same item ids, whatever
    order its keys came in (a record read back from the table has its keys in another order
    than the file's)."""
    return Map({key: fields[key] for key in sorted(fields)})


class YNotebookWriter:
    """Keeps the YNotebook equal to the table as the table changes (module docstring)."""

    def __init__(self, state: ProjectionState) -> None:
        self.state = state
        self.db = state.db
        self.ycells = state.ycells
        self.ymeta = state.ymeta

    # -- building ---------------------------------------------------------------------------

    def _cell_dict(self, record: Record) -> dict[str, Any]:
        stored = ordered_outputs(record)
        outputs = [self.state.render(o, record["id"]) for o in stored]
        if self.state.render_kept_shape and not all(map(_same_shape, stored, outputs)):
            self.state.render_kept_shape = False
        return export_cell(record, outputs_of=lambda _: outputs)

    def _ycell(self, record: Record) -> YMap:
        cell = self._cell_dict(record)
        fields: dict[str, Any] = {
            "id": cell["id"],
            "cell_type": cell["cell_type"],
            "source": Text(cell["source"]),
            "metadata": _canonical_map(cell["metadata"]),
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

    async def build_in_steps(
        self, cells_per_step: int = BUILD_STEP, *, records: list[Record] | None = None
    ) -> None:
        """Fill an empty YNotebook from the table, a few cells per event-loop turn (a big
        notebook built at once stalls every other client of the server). The table may
        change in between: the caller reconciles afterwards. ``records``: the table's
        records, when the caller has them (they are not read back from the table); the list
        is emptied."""
        if records is None:
            settings = self.db.read(SETTINGS_KEY) or {}
            positions = self.db.field_values("pos", {"type": "cell"})
            keys = [k for k in self.db.field_values("type", {"type": "cell"})]
            keys.sort(key=lambda k: cell_order_key({"id": k[1], "pos": positions.get(k, 0)}))
            count = len(keys)

            def cells_from(start: int) -> list[Record]:
                read = [self.db.read(k) for k in keys[start : start + cells_per_step]]
                return [r for r in read if r is not None]

        else:
            settings = next((r for r in records if (r["type"], r["id"]) == SETTINGS_KEY), {})
            cells = deque(sorted((r for r in records if r["type"] == "cell"), key=cell_order_key))
            count = len(cells)
            records.clear()  # each record is let go once built: a big notebook is not held twice

            def cells_from(start: int) -> list[Record]:  # (in order: from the front)
                return [cells.popleft() for _ in range(min(cells_per_step, len(cells)))]

        with self.state.writing_ynotebook():
            self.ymeta["nbformat"] = 4
            self.ymeta["nbformat_minor"] = 5
            self.ymeta["metadata"] = _canonical_map(self._notebook_metadata(settings))
        for start in range(0, count, cells_per_step):
            await asyncio.sleep(0)
            step = cells_from(start)
            with self.state.writing_ynotebook():
                self.ycells.extend([self._ycell(r) for r in step])
            self.state.order.extend(r["id"] for r in step)

    def build(self) -> None:
        """Fill an empty YNotebook from the table."""
        records = self.db.get()
        settings = next((r for r in records if (r["type"], r["id"]) == SETTINGS_KEY), {})
        cells = sorted((r for r in records if r["type"] == "cell"), key=cell_order_key)
        with self.state.writing_ynotebook():
            self.ymeta["nbformat"] = 4
            self.ymeta["nbformat_minor"] = 5
            self.ymeta["metadata"] = _canonical_map(self._notebook_metadata(settings))
            self.ycells.extend([self._ycell(r) for r in cells])
            self.state.order = [r["id"] for r in cells]

    @staticmethod
    def _notebook_metadata(settings: Record) -> dict[str, Any]:
        metadata = dict(settings.get("metadata") or {})
        kernel = settings.get("kernel")
        kernelspec = metadata.get("kernelspec")
        named = kernelspec.get("name") if isinstance(kernelspec, dict) else None
        if kernel and named != kernel:
            metadata["kernelspec"] = {"name": kernel, "display_name": kernel}
        return metadata

    def reconcile(self) -> None:
        """Make a restored YNotebook equal to the table, keeping every item it can (the
        table may be ahead of it after a crash between the two logs' writes)."""
        records = {r["id"]: r for r in self.db.get({"type": "cell"})}
        wanted = [r["id"] for r in sorted(records.values(), key=cell_order_key)]
        with self.state.writing_ynotebook():
            settings = self.db.peek(SETTINGS_KEY) or {}
            self._sync_map(self.ymeta, "metadata", self._notebook_metadata(settings))
            seen: set[str] = set()
            index = 0
            while index < len(self.ycells):  # cells the table lacks, duplicates, new types
                ycell = self.ycells[index]
                cell_id = ycell.get("id") if isinstance(ycell, Map) else None
                record = records.get(cell_id) if isinstance(cell_id, str) else None
                if (
                    not isinstance(ycell, Map)
                    or not isinstance(cell_id, str)
                    or record is None
                    or cell_id in seen
                    or ycell.get("cell_type") != record.get("cell_type", "code")
                ):
                    del self.ycells[index]
                    continue
                seen.add(cell_id)
                index += 1
            self.state.order = [str(c.get("id")) for c in self.ycells if isinstance(c, Map)]
            rank = {cell_id: n for n, cell_id in enumerate(wanted)}
            in_place = _longest_increasing(self.state.order, rank)
            for cell_id in [c for c in self.state.order if c not in in_place]:
                self._remove(cell_id)
            for cell_id in list(self.state.order):
                self._project_cell(cell_id, _everything_changed(cell_id))
            for cell_id in wanted:
                if cell_id not in self.state.order:
                    self._insert(records[cell_id])

    # -- following the table ----------------------------------------------------------------

    def on_table_change(self, event: ChangeEvent) -> None:
        """Write one table transaction into the YNotebook (unless the reader made it)."""
        if self.state.to_table:
            return
        try:
            with self.state.writing_ynotebook():
                for key, change in event.changes.items():
                    if key == SETTINGS_KEY:
                        self._project_settings(change)
                    elif len(key) == 2 and key[0] == "cell":
                        self._project_cell(str(key[1]), change)
        except Exception as e:
            # The table has the change already, whatever failed here (a bug of ours, seen in
            # the log and the status): JupyterLab's view is rebuilt from the table.
            count_error("projection.to_jupyterlab", e, "projecting a table change", logger=log)
            self._rebuild_cells()

    def _project_settings(self, change: RecordChange) -> None:
        if change.action == "delete" or not change.fields & {"metadata", "kernel"}:
            return
        settings = self.db.peek(SETTINGS_KEY) or {}
        self._sync_map(self.ymeta, "metadata", self._notebook_metadata(settings))

    def _index(self, cell_id: str) -> int:
        return self.state.order.index(cell_id)

    def _target_index(self, record: Record, without: str | None = None) -> int:
        """Where a cell with ``record``'s position belongs in the current order."""
        key = cell_order_key(record)
        order = [cid for cid in self.state.order if cid != without]
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
        self.state.order.insert(index, record["id"])

    def _remove(self, cell_id: str) -> None:
        index = self._index(cell_id)
        del self.ycells[index]
        del self.state.order[index]
        self.state.outputs.pop(cell_id, None)

    def _project_cell(self, cell_id: str, change: RecordChange) -> None:
        present = cell_id in self.state.order
        record = self.db.peek(("cell", cell_id))
        if change.action == "delete" or record is None:
            if present:
                self._remove(cell_id)
            return
        if not present:
            self._insert(record)
            return
        index = self._index(cell_id)
        ycell = self.ycells[index]
        fields = change.fields
        if not isinstance(ycell, Map):  # (the room's guard lets only maps in)
            raise TypeError(f"cell {cell_id} of the YNotebook is not a map")
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
        if fields & set(METADATA_FIELDS):
            self._sync_map(ycell, "metadata", export_cell(record, lambda _: [])["metadata"])
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
        self, cell_id: str, ycell: YMap, record: Record, change: RecordChange
    ) -> None:
        youtputs = ycell.get("outputs")
        old = self.state.outputs.get(cell_id)
        if old is None:
            old = [from_crdt(o) for o in youtputs] if isinstance(youtputs, Array) else []
        new = self._rendered_outputs(cell_id, record, change, old)
        self.state.outputs[cell_id] = new
        if not isinstance(youtputs, Array):
            ycell["outputs"] = Array([_youtput(o) for o in new])
            return
        first = 0
        limit = min(len(old), len(new))
        while first < limit and same_json(old[first], new[first]):
            first += 1
        if first == len(old) == len(new):
            return
        shown = youtputs[first] if first < len(youtputs) else None
        text = shown.get("text") if isinstance(shown, Map) else None
        if (
            first == len(old) - 1
            and first < len(new)
            and _same_stream(old[first], new[first])
            and isinstance(text, Text)
        ):
            # the last stream changed (grew, or a progress bar redrew its last line): only
            # the tail from the first changed character is rewritten, as a delete to the
            # end followed by an append — the form JupyterLab's stream output model applies
            _rewrite_tail(text, old[first]["text"], new[first]["text"])
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
            return [self.state.render(o, cell_id) for o in ordered_outputs(record)]
        changed = {int(k) for k in entries if k.isdigit()}
        return [
            old[i]
            if i < len(old) and i not in changed
            else self.state.render(outputs[str(i)], cell_id)
            for i in range(len(outputs))
        ]

    def _sync_map(self, parent: YMap, name: str, value: dict[str, Any]) -> None:
        """Make ``parent[name]`` a ``Map`` equal to ``value``, changing only what differs (a
        client may have written it as a plain JSON object: it becomes a ``Map`` again)."""
        ymap = parent.get(name)
        if not isinstance(ymap, Map):
            parent[name] = Map(value)
            return
        current = map_from_crdt(ymap)
        for key in [k for k in current if k not in value]:
            del ymap[key]
        for key, sub in value.items():
            if key not in current or not same_json(current[key], sub):
                ymap[key] = sub

    def _rebuild_cells(self) -> None:
        with self.state.writing_ynotebook():
            self.ycells.clear()
            self.state.order.clear()
            self.state.outputs.clear()
            cells = sorted(self.db.get({"type": "cell"}), key=cell_order_key)
            self.ycells.extend([self._ycell(r) for r in cells])
            self.state.order = [r["id"] for r in cells]


def _same_shape(stored: dict[str, Any], rendered: dict[str, Any]) -> bool:
    """Whether ``rendered`` makes the same Yjs items as ``stored`` would (the same fields; a
    stream's text is a ``Text``, one item per character): only values of fields differ."""
    return rendered.keys() == stored.keys() and (
        rendered.get("output_type") != "stream" or rendered.get("text") == stored.get("text")
    )


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
    fields = {"input", "state", "exec_count", "output", "attachments", *METADATA_FIELDS}
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
