"""Three-way merge of a notebook changed on disk into the live table.

``base`` is the notebook as this server last saved (or loaded) it, ``disk`` is what the file
holds now (``git pull``, another editor), ``live`` is the table with the collaborators' edits.
What changed on disk since ``base`` is applied to ``live`` unless live changed the same thing
too; then live wins, so an out-of-band change never silently overwrites a live edit:

* cells added on disk are added (after the cell that precedes them on disk);
* cells deleted on disk are deleted, unless live edited them;
* a field changed on disk takes the disk's value if live still has the base's value;
* cell sources are merged line-wise (diff3): disk hunks that touch lines live did not change are
  applied, overlapping hunks keep live's text;
* a new cell order on disk is taken when live kept the base order.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

from ..sync.table import Record, same_json
from .ipynb import cell_order_key
from .schema import SETTINGS_KEY

Patch = tuple[list[Record], list[Record]]  # (records to set, keys to delete)

_IGNORED = ("type", "id", "pos", "state", "start", "end")


def merge_text(base: str, disk: str, live: str) -> str:
    """diff3 of three texts by lines: disk's changes on top of live where they do not clash."""
    if disk in (base, live):
        return live
    if live == base:
        return disk
    base_lines = base.splitlines(keepends=True)
    disk_lines = disk.splitlines(keepends=True)
    live_lines = live.splitlines(keepends=True)
    # which base lines live left untouched, and where they are in live
    live_map: dict[int, int] = {}
    live_touched = [False] * (len(base_lines) + 1)
    for tag, i1, i2, j1, _j2 in SequenceMatcher(None, base_lines, live_lines, False).get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                live_map[i1 + k] = j1 + k
        else:
            for k in range(i1, max(i2, i1 + 1)):
                live_touched[min(k, len(base_lines))] = True
    hunks = [
        op
        for op in SequenceMatcher(None, base_lines, disk_lines, False).get_opcodes()
        if op[0] != "equal"
    ]
    result = list(live_lines)
    # apply from the end so earlier live indexes stay valid
    for _tag, i1, i2, j1, j2 in reversed(hunks):
        span = range(i1, max(i2, i1 + 1))
        if any(live_touched[min(k, len(base_lines))] for k in span):
            continue  # live changed these lines too: keep live's
        if i1 < len(base_lines):
            if i1 not in live_map or (i2 > i1 and i2 - 1 not in live_map):
                continue
            start = live_map[i1]
            end = live_map[i2 - 1] + 1 if i2 > i1 else start
        else:
            start = end = len(live_lines) if not base_lines else live_map.get(i1 - 1, -1) + 1
        result[start:end] = disk_lines[j1:j2]
    return "".join(result)


def _fields(record: Record | None) -> dict[str, Any]:
    return {k: v for k, v in (record or {}).items() if k not in _IGNORED}


def _merge_record(base: Record | None, disk: Record, live: Record) -> dict[str, Any]:
    """The fields to set on ``live`` so it also has ``disk``'s changes since ``base``."""
    patch: dict[str, Any] = {}
    base_f, disk_f, live_f = _fields(base), _fields(disk), _fields(live)
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
            sub: dict[str, Any] = {}
            for key in set(b) | set(d):
                if not same_json(b.get(key), d.get(key)) and same_json(b.get(key), cur.get(key)):
                    sub[key] = d.get(key)  # None deletes
            if name == "output":
                if sub:
                    patch[name] = None if not d else {**_nulls(cur, d), **d}
            elif sub:
                patch[name] = sub
        elif same_json(b, cur):
            patch[name] = d
    return patch


def _nulls(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {k: None for k in current if k not in new}


def merge_notebook(base: list[Record], disk: list[Record], live: list[Record]) -> Patch:
    """The changes that bring ``disk``'s edits since ``base`` into ``live`` (module docstring)."""
    base_k, disk_k, live_k = _by_key(base), _by_key(disk), _by_key(live)
    sets: list[Record] = []
    deletes: list[Record] = []

    settings_patch = _merge_record(
        base_k.get(SETTINGS_KEY), disk_k.get(SETTINGS_KEY, {}), live_k.get(SETTINGS_KEY, {})
    )
    if settings_patch:
        sets.append({"type": SETTINGS_KEY[0], "id": SETTINGS_KEY[1], **settings_patch})

    disk_cells = sorted((r for r in disk if r["type"] == "cell"), key=cell_order_key)
    live_cells = sorted((r for r in live if r["type"] == "cell"), key=cell_order_key)
    base_cells = sorted((r for r in base if r["type"] == "cell"), key=cell_order_key)

    for key, b in base_k.items():
        if b["type"] != "cell" or key in disk_k or key not in live_k:
            continue
        if same_json(_fields(b), _fields(live_k[key])):
            deletes.append({"type": "cell", "id": b["id"]})  # deleted on disk, untouched live
    deleted = {d["id"] for d in deletes}

    for d in disk_cells:
        key = ("cell", d["id"])
        if key in live_k:
            patch = _merge_record(base_k.get(key), d, live_k[key])
            if patch:
                sets.append({"type": "cell", "id": d["id"], **patch})

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
            record = {k: v for k, v in new_cells[cell_id].items() if k not in ("state",)}
            sets.append({**record, "pos": pos})
        elif position.get(cell_id) != pos:
            sets.append({"type": "cell", "id": cell_id, "pos": pos})
    return sets, deletes


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
