"""ipynb ⇄ notebook records.

Import is deterministic: the same file always gives the same records, and ``initial_update``
turns them into the same Yjs update byte for byte (built in a ``Doc`` with client id 0), so a
client that reconnects after a server restart never sees its cells twice.

Normalisations (what ``export(import(nb))`` changes, and nothing else):

* the notebook becomes nbformat 4.5, repaired where it was invalid (``repair.py``), and cells
  get ids: missing or invalid ids are derived from the cell's position and content, duplicates
  get a suffix;
* multi-line strings are stored as one string and written back as nbformat writes them (lists
  of lines);
* numbers that are integral floats come back as ints (Yjs stores numbers as floats);
* cell tags are written in sorted order (the table stores them as ``{tag: true}``);
* what nbformat itself drops when it writes: output ``transient`` fields, the notebook's
  ``signature``, ``orig_nbformat`` / ``orig_nbformat_minor`` and cells' ``trusted`` metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pycrdt import Doc

from ..errors import InvalidRecordError
from ..origin import FILE
from ..sync.table import Record, json_copy
from .ipynb_text import write_nbformat4
from .repair import (
    CELL_ID_PATTERN,
    NBFORMAT,
    NBFORMAT_MINOR,
    join_lines,
    load_notebook,
    parse_notebook,
)
from .schema import SETTINGS_KEY, notebook_syncdb, validate_record

# reading a file (and repairing it) lives in repair.py; importers find it here too
__all__ = [
    "cell_record",
    "initial_update",
    "load_notebook",
    "notebook_to_records",
    "parse_notebook",
    "records_to_notebook",
    "write_notebook",
]

_CELL_ID = CELL_ID_PATTERN  # projection.py checks JupyterLab's ids with it
# cell metadata that has a field of its own in the cell record
_OWN_FIELDS = ("collapsed", "scrolled", "tags")

OutputTransform = Callable[[dict[str, Any]], dict[str, Any]]


def notebook_to_records(
    nb: Mapping[str, Any], *, transform_output: OutputTransform | None = None
) -> list[Record]:
    """The records of a parsed notebook: the settings record first, then cells in order."""
    metadata = dict(nb.get("metadata", {}))
    kernelspec = metadata.get("kernelspec")
    settings: Record = {
        "type": SETTINGS_KEY[0],
        "id": SETTINGS_KEY[1],
        "metadata": metadata,
        "nbformat": NBFORMAT,
        "nbformat_minor": nb.get("nbformat_minor", NBFORMAT_MINOR),
    }
    if isinstance(kernelspec, dict) and isinstance(kernelspec.get("name"), str):
        settings["kernel"] = kernelspec["name"]
    records = [settings]
    for index, cell in enumerate(nb["cells"]):
        records.append(cell_record(cell, float(index), transform_output))
    return records


def cell_record(
    cell: Mapping[str, Any],
    pos: float | None = None,
    transform_output: OutputTransform | None = None,
) -> Record:
    """The record of one nbformat cell dict (sources and texts already joined)."""
    metadata = dict(cell.get("metadata") or {})
    record: Record = {
        "type": "cell",
        "id": cell["id"],
        "cell_type": cell.get("cell_type", "code"),
        "input": join_lines(cell.get("source", "")),
        "pos": pos,
    }
    for name in _OWN_FIELDS:
        if name not in metadata:
            continue
        value = metadata[name]
        if name == "tags":
            if not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
                continue  # not nbformat's list of strings: left in metadata as it is
            value = dict.fromkeys(value, True)
        try:
            validate_record({"type": "cell", "id": cell["id"], name: value})
        except InvalidRecordError:
            continue
        record[name] = value
        del metadata[name]
    record["metadata"] = metadata
    if "attachments" in cell:
        record["attachments"] = cell["attachments"]
    if record["cell_type"] == "code":
        record["exec_count"] = cell.get("execution_count")
        outputs = cell.get("outputs") or []
        if transform_output is not None:
            outputs = [transform_output(o) for o in outputs]
        record["output"] = {str(i): o for i, o in enumerate(outputs)}
    return {k: v for k, v in record.items() if v is not None}


def initial_update(records: Iterable[Record]) -> bytes:
    """The Yjs update that creates ``records`` — identical bytes for identical records."""
    db = notebook_syncdb(doc=Doc(client_id=0))
    db.close()  # a throwaway table: no change events, no update copies
    with db.transaction(FILE):
        for record in records:
            db.set(record, FILE)
    return db.get_update()


# -- export -----------------------------------------------------------------------------------

OutputsOf = Callable[[Record], list[dict[str, Any]]]


def ordered_outputs(cell: Record) -> list[dict[str, Any]]:
    """A cell's output messages in index order (the plain reading of its ``output`` map)."""
    output = cell.get("output") or {}
    return [output[k] for k in sorted(output, key=int) if output[k] is not None]


def cell_order_key(cell: Record) -> tuple[float, str]:
    """Cells sort by ``pos``; equal positions (concurrent inserts) by id, the same everywhere."""
    pos = cell.get("pos", 0)
    return (pos if isinstance(pos, (int, float)) else 0, str(cell.get("id")))


def in_notebook_order(records: Iterable[Record]) -> list[Record]:
    """``records`` in the order a reader expects, the same on every call: the records that
    are not cells (the settings) by key, then the cells in notebook order (the table itself
    has no order: a document opened again iterates its records differently)."""
    records = list(records)
    others = sorted(
        (r for r in records if r.get("type") != "cell"),
        key=lambda r: (str(r.get("type")), str(r.get("id"))),
    )
    return others + sorted_cells(records)


def sorted_cells(records: Iterable[Record]) -> list[Record]:
    """The cell records in notebook order."""
    cells = [r for r in records if r.get("type") == "cell"]
    cells.sort(key=cell_order_key)
    return cells


def records_to_notebook(
    records: Iterable[Record], *, outputs_of: OutputsOf = ordered_outputs
) -> dict[str, Any]:
    """An nbformat 4.5 notebook dict of the records (``outputs_of`` may re-inline blobs)."""
    records = list(records)
    settings = next((r for r in records if (r.get("type"), r.get("id")) == SETTINGS_KEY), {})
    metadata = json_copy(settings.get("metadata") or {})
    kernel = settings.get("kernel")
    if kernel:
        kernelspec = metadata.get("kernelspec")
        if not isinstance(kernelspec, dict) or kernelspec.get("name") != kernel:
            metadata["kernelspec"] = {"name": kernel, "display_name": kernel}
    cells = [export_cell(cell, outputs_of) for cell in sorted_cells(records)]
    return {
        "nbformat": NBFORMAT,
        "nbformat_minor": NBFORMAT_MINOR,
        "metadata": metadata,
        "cells": cells,
    }


def export_cell(cell: Record, outputs_of: OutputsOf = ordered_outputs) -> dict[str, Any]:
    """The nbformat dict of one cell record (a field a peer's raw update set to null reads as
    None: taken as unset, like a field never set)."""
    cell = {name: value for name, value in cell.items() if value is not None}
    cell_type = cell.get("cell_type") or "code"
    metadata = json_copy(cell.get("metadata") or {})
    for name in ("collapsed", "scrolled"):
        if name in cell:
            metadata[name] = cell[name]
    if "tags" in cell:
        metadata["tags"] = sorted(tag for tag, on in cell["tags"].items() if on)
    out: dict[str, Any] = {
        "id": cell["id"],
        "cell_type": cell_type,
        "metadata": metadata,
        "source": cell.get("input") or "",
    }
    if cell_type == "code":
        out["execution_count"] = cell.get("exec_count")
        out["outputs"] = [json_copy(o) for o in outputs_of(cell)]
    elif "attachments" in cell:
        out["attachments"] = json_copy(cell["attachments"])
    return out


def write_notebook(nb: Mapping[str, Any]) -> str:
    """The ipynb text ``nbformat.writes`` writes for the nbformat-4 notebook ``nb``, byte for
    byte (lists of lines, sorted keys, no transient metadata), without copying it
    (``ipynb_text.py``), and not validated: ``nbformat.writes`` only logs what its validation
    finds, and the notebooks written here are exported from records the table checked."""
    if nb.get("nbformat") != NBFORMAT:
        # imported here: nbformat loads jsonschema, whose format grammars take seconds of CPU
        # to build, and the client (which imports this module for the cell order) never
        # writes files
        import nbformat

        text: str = nbformat.writes(nbformat.from_dict(json_copy(dict(nb))), version=NBFORMAT)
        return text
    return write_nbformat4(nb)
