"""Three-way merge of a notebook changed on disk into the live table.

``base`` is the table at the version this server last saved (or loaded), ``disk`` is what the
file holds now (``git pull``, another editor), ``live`` is the table with the collaborators'
edits. What changed on disk since ``base`` is applied to ``live`` unless live changed the same
thing too; then live wins, so an out-of-band change never silently overwrites a live edit:

* cells added on disk are added (after the cell that precedes them on disk);
* cells deleted on disk are deleted, unless live edited them;
* a field changed on disk takes the disk's value if live still has the base's value;
* cell sources are merged line-wise with ``merge3`` (diff3): disk hunks that touch lines live
  did not change are applied, conflicting hunks keep live's text;
* a new cell order on disk is taken when live kept the base order.

Outputs are compared like with like. The table holds them truncated (a "more output" marker,
blob references) while the file holds them re-inlined, so a cell's outputs on disk are compared
with a digest of the outputs *as this server wrote them* (``SavedDigests``), never with the
table. Outputs that did change on disk are returned apart (``Merge.outputs``): the caller puts
them through the same limits, blob extraction and overflow as kernel outputs.

Why not nbdime's notebook merge: it merges whole nbformat notebooks, so the live side would have
to be exported with its overflow re-inlined (megabytes per flood cell) and its decisions mapped
back onto records; the record-level merge here needs neither. Line merges use ``merge3``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import merge3

from ..sync.table import Record, same_json
from .ipynb import cell_order_key
from .ipynb_text import write_json_to
from .schema import SETTINGS_KEY
from .trust import without_trust

# fields that are not merged: keys, position (merged as an order), run state, outputs (apart)
_IGNORED = ("type", "id", "pos", "state", "start", "end")
_NOT_MERGED = (*_IGNORED, "output")


@dataclass
class Merge:
    """The changes that bring the disk's edits into live."""

    sets: list[Record] = field(default_factory=list)
    deletes: list[Record] = field(default_factory=list)
    #: cell id -> the nbformat outputs on disk, for cells whose outputs live should take
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class SavedDigests:
    """What this server last wrote: a digest of the whole notebook and of each cell's outputs."""

    notebook: str
    outputs: dict[str, str]


class _Hashing:
    """A text file that only hashes what is written to it."""

    def __init__(self) -> None:
        self.sha1 = hashlib.sha1()

    def write(self, text: str) -> int:
        self.sha1.update(text.encode("utf-8", "surrogatepass"))
        return len(text)


def digest(value: Any) -> str:
    """A digest of JSON ``value`` that ignores key order and ``1`` vs ``1.0``.

    The hash of its JSON text with sorted keys, written and hashed a piece at a time
    (``write_json_to``): ``json.dumps`` of a whole notebook is one C call that holds the GIL
    for as long as it runs (100 ms and more for 20 MB), and so is encoding one long string
    (a flood's output), which stalls the event loop even when the digest is computed in a
    worker thread.
    """
    hashing = _Hashing()
    write_json_to(_integral(value), hashing)
    return hashing.sha1.hexdigest()


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def saved_digests(nb: Mapping[str, Any]) -> SavedDigests:
    """The digests of a parsed notebook (``ipynb.parse_notebook``'s normal form)."""
    outputs = {
        cell["id"]: digest(cell.get("outputs") or [])
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code"
    }
    return SavedDigests(digest(without_trust(nb)), outputs)


def merge_text(base: str, disk: str, live: str) -> str:
    """diff3 of three texts by lines: disk's changes on top of live where they do not clash."""
    if disk in (base, live):
        return live
    if live == base:
        return disk
    base_lines = base.splitlines(keepends=True)
    live_lines = live.splitlines(keepends=True)
    disk_lines = disk.splitlines(keepends=True)
    merged: list[str] = []
    for region in merge3.Merge3(base_lines, live_lines, disk_lines).merge_regions():
        match region:
            case ("unchanged", start, end):
                merged.extend(base_lines[start:end])
            case ("same" | "a", start, end):
                merged.extend(live_lines[start:end])
            case ("b", start, end):
                merged.extend(disk_lines[start:end])
            case ("conflict", _, _, live_start, live_end, _, _):  # live's lines win
                merged.extend(live_lines[live_start:live_end])
    return "".join(merged)


def _fields(record: Record | None, ignored: tuple[str, ...] = _IGNORED) -> dict[str, Any]:
    return {k: v for k, v in (record or {}).items() if k not in ignored}


def _merge_record(base: Record | None, disk: Record, live: Record) -> dict[str, Any]:
    """The fields to set on ``live`` so it also has ``disk``'s changes since ``base``."""
    patch: dict[str, Any] = {}
    base_f, disk_f = _fields(base, _NOT_MERGED), _fields(disk, _NOT_MERGED)
    live_f = _fields(live, _NOT_MERGED)
    for name in set(base_f) | set(disk_f):
        b, d, cur = base_f.get(name), disk_f.get(name), live_f.get(name)
        if same_json(b, d) or same_json(d, cur):
            continue
        if name == "input" and isinstance(cur, str):
            merged = merge_text(b if isinstance(b, str) else "", d or "", cur)
            if merged != cur:
                patch[name] = merged
        elif isinstance(d, dict) and isinstance(b, dict) and isinstance(cur, dict):
            # per key, like the table's own merge of object fields
            sub = {
                key: d.get(key)  # None deletes
                for key in set(b) | set(d)
                if not same_json(b.get(key), d.get(key)) and same_json(b.get(key), cur.get(key))
            }
            if sub:
                patch[name] = sub
        elif same_json(b, cur):
            patch[name] = d
    return patch


def disk_outputs(record: Record) -> list[dict[str, Any]]:
    """The nbformat outputs of a cell record made from the file (no transform)."""
    output = record.get("output") or {}
    return [output[k] for k in sorted(output, key=int) if output[k] is not None]


def merge_notebook(
    base: list[Record], disk: list[Record], live: list[Record], saved: SavedDigests
) -> Merge:
    """The changes that bring ``disk``'s edits since ``base`` into ``live`` (module docstring).

    ``disk`` holds the file's outputs as they are (``notebook_to_records`` without a
    transform); ``saved`` says which of them this server wrote.
    """
    base_k, disk_k, live_k = _by_key(base), _by_key(disk), _by_key(live)
    result = Merge()

    settings_patch = _merge_record(
        base_k.get(SETTINGS_KEY), disk_k.get(SETTINGS_KEY, {}), live_k.get(SETTINGS_KEY, {})
    )
    if settings_patch:
        result.sets.append({"type": SETTINGS_KEY[0], "id": SETTINGS_KEY[1], **settings_patch})

    disk_cells = sorted((r for r in disk if r["type"] == "cell"), key=cell_order_key)
    live_cells = sorted((r for r in live if r["type"] == "cell"), key=cell_order_key)
    base_cells = sorted((r for r in base if r["type"] == "cell"), key=cell_order_key)

    for key, b in base_k.items():
        if b["type"] != "cell" or key in disk_k or key not in live_k:
            continue
        if same_json(_fields(b), _fields(live_k[key])):
            result.deletes.append({"type": "cell", "id": b["id"]})  # deleted on disk only
    deleted = {d["id"] for d in result.deletes}

    for d in disk_cells:
        key = ("cell", d["id"])
        if key not in live_k:
            continue
        patch = _merge_record(base_k.get(key), d, live_k[key])
        if patch:
            result.sets.append({"type": "cell", "id": d["id"], **patch})
        if d.get("cell_type", "code") == "code" and _outputs_changed_on_disk(d, saved):
            live_output = live_k[key].get("output") or {}
            base_output = (base_k.get(key) or {}).get("output") or {}
            if same_json(base_output, live_output):  # live did not run the cell since
                result.outputs[d["id"]] = disk_outputs(d)

    # cells on disk but not live: new on disk (added), or deleted live (stay deleted)
    new_cells = {
        c["id"]: c
        for c in disk_cells
        if ("cell", c["id"]) not in live_k and ("cell", c["id"]) not in base_k
    }
    # order: the disk's, when live kept the base order; otherwise live's
    base_order = [c["id"] for c in base_cells]
    live_order = [c["id"] for c in live_cells if c["id"] not in deleted]
    disk_order = [
        c["id"] for c in disk_cells if c["id"] in new_cells or ("cell", c["id"]) in live_k
    ]
    shared = set(live_order) & set(disk_order)
    common = [i for i in base_order if i in shared]
    live_kept = [i for i in live_order if i in shared] == common
    disk_moved = [i for i in disk_order if i in shared] != common
    if live_kept and disk_moved:
        order = _interleave(disk_order, live_order)
    else:
        order = _interleave(live_order, disk_order)
    position = {r["id"]: r.get("pos") for r in live_cells}
    for n, cell_id in enumerate(order):
        pos = float(n)
        if cell_id in new_cells:
            cell = new_cells[cell_id]
            record = {k: v for k, v in cell.items() if k not in ("state", "output")}
            if cell.get("cell_type", "code") == "code":
                result.outputs[cell_id] = disk_outputs(cell)
            result.sets.append({**record, "pos": pos})
        elif position.get(cell_id) != pos:
            result.sets.append({"type": "cell", "id": cell_id, "pos": pos})
    return result


def _outputs_changed_on_disk(disk: Record, saved: SavedDigests) -> bool:
    written = saved.outputs.get(disk["id"])
    return written is None or written != digest(disk_outputs(disk))


def _by_key(records: list[Record]) -> dict[tuple[Any, Any], Record]:
    return {(r["type"], r["id"]): r for r in records}


def _interleave(primary: list[str], secondary: list[str]) -> list[str]:
    """``primary``'s order, with the ids only ``secondary`` has after their predecessor there."""
    order = list(primary)
    placed = set(order)
    for index, cell_id in enumerate(secondary):
        if cell_id in placed:
            continue
        before = next(
            (secondary[k] for k in range(index - 1, -1, -1) if secondary[k] in placed), None
        )
        at = order.index(before) + 1 if before is not None else 0
        order.insert(at, cell_id)
        placed.add(cell_id)
    return order
