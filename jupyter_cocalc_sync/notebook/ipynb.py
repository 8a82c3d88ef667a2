"""ipynb ⇄ notebook records (SPEC section 4).

Import is deterministic: the same file always gives the same records, and ``initial_update``
turns them into the same Yjs update byte for byte (built in a ``Doc`` with client id 0), so a
client that reconnects after a server restart never sees its cells twice.

Normalisations (what ``export(import(nb))`` changes, and nothing else):

* the notebook becomes nbformat 4.5: nbformat 3 is upgraded by ``nbformat.v4.upgrade`` (heading
  cells become markdown), and cells get ids: missing or invalid ids are derived from the cell's
  position and content, duplicates get a suffix;
* multi-line strings are stored as one string and written back as nbformat writes them (lists
  of lines);
* numbers that are integral floats come back as ints (Yjs stores numbers as floats);
* cell tags are written in sorted order (the table stores them as ``{tag: true}``);
* what nbformat itself drops when it writes: output ``transient`` fields, the notebook's
  ``signature``, ``orig_nbformat`` / ``orig_nbformat_minor`` and cells' ``trusted`` metadata.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import nbformat
from pycrdt import Doc

from ..errors import InvalidRecordError, NotebookFormatError
from ..sync.table import Record, json_copy
from .schema import SETTINGS_KEY, notebook_syncdb, validate_record

NBFORMAT = 4
NBFORMAT_MINOR = 5

_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# cell metadata that has a field of its own in the cell record
_OWN_FIELDS = ("collapsed", "scrolled", "tags")

OutputTransform = Callable[[dict[str, Any]], dict[str, Any]]


def _join(value: Any) -> Any:
    return "".join(value) if isinstance(value, list) else value


def _join_bundle(bundle: Any) -> Any:
    if not isinstance(bundle, dict):
        return bundle
    return {
        mime: (_join(data) if isinstance(data, list) and not mime.endswith("json") else data)
        for mime, data in bundle.items()
    }


def _fail(path: str, problem: str) -> NotebookFormatError:
    where = f" at {path}" if path else ""
    return NotebookFormatError(f"not a valid notebook{where}: {problem}")


def parse_notebook(source: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Parse an ipynb file into a plain nbformat-4 dict with joined strings.

    Raises ``NotebookFormatError`` naming the problem (bad JSON, missing ``cells``, a cell
    that is not an object, an unsupported nbformat, …).
    """
    if isinstance(source, (bytes, bytearray)):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _fail("", f"not UTF-8 text ({e})") from None
    if isinstance(source, str):
        try:
            raw = json.loads(source)
        except json.JSONDecodeError as e:
            raise _fail("", f"not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    else:
        raw = json_copy(dict(source))
    if not isinstance(raw, dict):
        raise _fail("", f"the top level must be an object, not {type(raw).__name__}")
    major = raw.get("nbformat")
    if major == 3:
        if not isinstance(raw.get("worksheets", []), list):
            raise _fail("worksheets", "must be a list")
        for i, ws in enumerate(raw.get("worksheets", [])):
            if not isinstance(ws, dict) or not isinstance(ws.get("cells", []), list):
                raise _fail(f"worksheets[{i}]", "must be an object with a list of cells")
            for j, cell in enumerate(ws.get("cells", [])):
                if not isinstance(cell, dict):
                    raise _fail(f"worksheets[{i}].cells[{j}]", "a cell must be an object")
        try:
            # nbformat's own reader joins v3's lists of lines before it upgrades
            nb = nbformat.reads(json.dumps(raw), as_version=NBFORMAT)
        except Exception as e:
            raise _fail("", f"cannot upgrade nbformat 3: {e}") from None
        raw = json.loads(json.dumps(nb))
        # ids made up by the upgrade are random: derive them instead (deterministic import)
        for cell in raw.get("cells", []):
            cell.pop("id", None)
    elif major != 4:
        raise _fail("nbformat", f"unsupported nbformat {major!r} (3 and 4 are supported)")
    cells = raw.get("cells")
    if not isinstance(cells, list):
        raise _fail("cells", "missing, or not a list")
    metadata = raw.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _fail("metadata", "must be an object")
    minor = raw.get("nbformat_minor", 0)
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise _fail("nbformat_minor", "must be an integer")
    parsed_cells = [_parse_cell(cell, f"cells[{i}]") for i, cell in enumerate(cells)]
    _repair_ids(parsed_cells)
    return {
        "nbformat": NBFORMAT,
        "nbformat_minor": minor,
        "metadata": metadata,
        "cells": parsed_cells,
    }


def _parse_cell(cell: Any, path: str) -> dict[str, Any]:
    if not isinstance(cell, dict):
        raise _fail(path, f"a cell must be an object, not {type(cell).__name__}")
    cell = dict(cell)
    cell_type = cell.get("cell_type")
    if cell_type not in ("code", "markdown", "raw"):
        raise _fail(f"{path}.cell_type", f"unknown cell type {cell_type!r}")
    source = _join(cell.get("source", ""))
    if not isinstance(source, str) or (
        isinstance(cell.get("source"), list) and not all(isinstance(s, str) for s in cell["source"])
    ):
        raise _fail(f"{path}.source", "must be a string or a list of strings")
    cell["source"] = source
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _fail(f"{path}.metadata", "must be an object")
    cell["metadata"] = metadata
    if "attachments" in cell:
        if not isinstance(cell["attachments"], dict):
            raise _fail(f"{path}.attachments", "must be an object")
        cell["attachments"] = {
            name: _join_bundle(bundle) for name, bundle in cell["attachments"].items()
        }
    if cell_type == "code":
        outputs = cell.get("outputs", [])
        if not isinstance(outputs, list):
            raise _fail(f"{path}.outputs", "must be a list")
        cell["outputs"] = [_parse_output(o, f"{path}.outputs[{j}]") for j, o in enumerate(outputs)]
        count = cell.get("execution_count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise _fail(f"{path}.execution_count", "must be an integer or null")
    return cell


def _parse_output(output: Any, path: str) -> dict[str, Any]:
    if not isinstance(output, dict):
        raise _fail(path, f"an output must be an object, not {type(output).__name__}")
    if not isinstance(output.get("output_type"), str):
        raise _fail(f"{path}.output_type", "missing")
    output = dict(output)
    output.pop("transient", None)
    if "text" in output:
        output["text"] = _join(output["text"])
    if "data" in output:
        if not isinstance(output["data"], dict):
            raise _fail(f"{path}.data", "must be an object")
        output["data"] = _join_bundle(output["data"])
    return output


def _derived_id(index: int, cell: Mapping[str, Any]) -> str:
    digest = hashlib.sha1(f"{index}\0{cell['cell_type']}\0{cell['source']}".encode())
    return digest.hexdigest()[:12]


def _repair_ids(cells: list[dict[str, Any]]) -> None:
    """Keep valid unique ids; derive the missing or invalid ones; de-duplicate the rest."""
    seen: set[str] = set()
    for index, cell in enumerate(cells):
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not _CELL_ID.match(cell_id):
            cell_id = _derived_id(index, cell)
        base, n = cell_id, 1
        while cell_id in seen:
            suffix = f"-{n}"
            cell_id = base[: 64 - len(suffix)] + suffix
            n += 1
        seen.add(cell_id)
        cell["id"] = cell_id


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
        "input": _join(cell.get("source", "")),
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
    with db.transaction():
        for record in records:
            db.set(record)
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
    """The nbformat dict of one cell record."""
    cell_type = cell.get("cell_type", "code")
    metadata = json_copy(cell.get("metadata") or {})
    for name in ("collapsed", "scrolled"):
        if name in cell:
            metadata[name] = cell[name]
    if "tags" in cell:
        metadata["tags"] = sorted(tag for tag, on in (cell["tags"] or {}).items() if on)
    out: dict[str, Any] = {
        "id": cell["id"],
        "cell_type": cell_type,
        "metadata": metadata,
        "source": cell.get("input", ""),
    }
    if cell_type == "code":
        out["execution_count"] = cell.get("exec_count")
        out["outputs"] = [json_copy(o) for o in outputs_of(cell)]
    elif "attachments" in cell:
        out["attachments"] = json_copy(cell["attachments"])
    return out


def write_notebook(nb: Mapping[str, Any]) -> str:
    """The ipynb text nbformat writes for ``nb`` (lists of lines, sorted keys)."""
    return nbformat.writes(nbformat.from_dict(json_copy(dict(nb))), version=NBFORMAT)
