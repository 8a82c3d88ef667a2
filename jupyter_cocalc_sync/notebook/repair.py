"""Reading ``.ipynb`` files, repairing what can be repaired (like nbformat's upgrade does).

A file that is not a notebook at all (not JSON, not an object, no list of cells, an unknown
nbformat) raises ``NotebookFormatError``. Anything else opens: what is invalid is turned into
its valid form and every repair is reported (``LoadedNotebook.warnings``), never silently:

* nbformat 1–3 files are upgraded by ``nbformat.reads``; a v3-style ``heading`` cell in a v4
  file becomes a markdown cell with ``#``s (nbformat's own ``upgrade_cell``);
* a cell of unknown type becomes a raw cell with the same source; a cell that is not an object
  becomes a raw cell holding its JSON;
* a missing ``source`` becomes ``""``; bad or duplicate cell ids are replaced (derived from the
  cell's position and content, so the same file always gives the same ids);
* an output of unknown type (or not an object) becomes a ``display_data`` whose text says so;
* a ``kernelspec`` without a name is moved aside (the notebook uses the default kernel).

What cannot be kept where it was (an unknown output, a cell's original type, a nameless
kernelspec, metadata that is not an object) is kept under the ``cocalc_sync_repaired`` key of
the cell's (or notebook's) metadata, so nothing is lost and the next save is valid nbformat.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nbformat
from nbformat.v4.convert import upgrade_cell

from ..errors import NotebookFormatError
from ..sync.table import json_copy

NBFORMAT = 4
NBFORMAT_MINOR = 5
REPAIRED_KEY = "cocalc_sync_repaired"
OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")

CELL_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass
class LoadedNotebook:
    """A parsed notebook (nbformat 4, joined strings) and what had to be repaired."""

    notebook: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def join_lines(value: Any) -> Any:
    return "".join(value) if isinstance(value, list) else value


def join_bundle(bundle: Any) -> Any:
    if not isinstance(bundle, dict):
        return bundle
    return {
        mime: (join_lines(data) if isinstance(data, list) and not mime.endswith("json") else data)
        for mime, data in bundle.items()
    }


def _fail(path: str, problem: str) -> NotebookFormatError:
    where = f" at {path}" if path else ""
    return NotebookFormatError(f"not a valid notebook{where}: {problem}")


def parse_notebook(source: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The repaired notebook of ``source`` (see ``load_notebook``)."""
    return load_notebook(source).notebook


def load_notebook(source: str | bytes | Mapping[str, Any]) -> LoadedNotebook:
    """Parse an ipynb file into a plain nbformat-4 dict with joined strings, repairing it.

    Raises ``NotebookFormatError`` naming the problem only when it is not a notebook at all.
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
    loaded = LoadedNotebook({})
    major = raw.get("nbformat")
    if major is None and isinstance(raw.get("cells"), list):
        loaded.warnings.append("no nbformat version: read as nbformat 4")
        major = NBFORMAT
    if major in (1, 2, 3):
        raw = _upgrade(raw)
    elif major != NBFORMAT:
        raise _fail("nbformat", f"unsupported nbformat {major!r} (1 to 4 are supported)")
    cells = raw.get("cells")
    if not isinstance(cells, list):
        raise _fail("cells", "missing, or not a list")
    metadata = raw.get("metadata", {})
    if not isinstance(metadata, dict):
        loaded.warnings.append(f"metadata is not an object: kept under {REPAIRED_KEY}")
        metadata = {REPAIRED_KEY: {"metadata": metadata}}
    _repair_kernelspec(metadata, loaded.warnings)
    minor = raw.get("nbformat_minor", 0)
    if not isinstance(minor, int) or isinstance(minor, bool):
        loaded.warnings.append(f"nbformat_minor {minor!r} is not an integer: read as 4")
        minor = 4
    parsed = [_parse_cell(cell, f"cells[{i}]", loaded.warnings) for i, cell in enumerate(cells)]
    _repair_ids(parsed, loaded.warnings, ids_expected=major == NBFORMAT and minor >= 5)
    loaded.notebook = {
        "nbformat": NBFORMAT,
        "nbformat_minor": minor,
        "metadata": metadata,
        "cells": parsed,
    }
    return loaded


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        # nbformat's own reader joins v3's lists of lines before it upgrades
        nb = nbformat.reads(json.dumps(raw), as_version=NBFORMAT)
    except Exception as e:
        raise _fail("", f"cannot upgrade nbformat {raw.get('nbformat')}: {e}") from None
    upgraded = json.loads(json.dumps(nb))
    # ids made up by the upgrade are random: derive them instead (deterministic import)
    for cell in upgraded.get("cells", []):
        if isinstance(cell, dict):
            cell.pop("id", None)
    return upgraded


def _repair_kernelspec(metadata: dict[str, Any], warnings: list[str]) -> None:
    spec = metadata.get("kernelspec")
    if spec is None:
        return
    if isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"]:
        if not isinstance(spec.get("display_name"), str):
            metadata["kernelspec"] = {**spec, "display_name": spec["name"]}
            warnings.append("kernelspec had no display_name: its name is used")
        return
    metadata.pop("kernelspec")
    kept = metadata.setdefault(REPAIRED_KEY, {})
    if isinstance(kept, dict):
        kept["kernelspec"] = spec
    warnings.append(
        f"kernelspec has no name: the default kernel is used; it is kept in "
        f"metadata.{REPAIRED_KEY}.kernelspec"
    )


def _keep(cell: dict[str, Any], name: str, value: Any) -> None:
    metadata = cell["metadata"]
    kept = metadata.get(REPAIRED_KEY)
    if not isinstance(kept, dict):
        kept = metadata[REPAIRED_KEY] = {}
    kept[name] = value


def _parse_cell(cell: Any, path: str, warnings: list[str]) -> dict[str, Any]:
    if not isinstance(cell, dict):
        warnings.append(f"{path}: not an object; kept as a raw cell holding its JSON")
        return {"cell_type": "raw", "source": json.dumps(cell), "metadata": {}}
    cell = dict(cell)
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        warnings.append(f"{path}.metadata: not an object; kept under {REPAIRED_KEY}")
        metadata = {REPAIRED_KEY: {"metadata": metadata}}
    cell["metadata"] = metadata
    source = cell.get("source")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    elif source is None:
        if "source" in cell or cell.get("cell_type") != "heading":
            warnings.append(f"{path}: no source; an empty one was added")
        source = ""
    elif not isinstance(source, str):
        warnings.append(f"{path}.source: not a string; kept as its JSON")
        source = json.dumps(source)
    cell["source"] = source
    cell_type = cell.get("cell_type")
    if cell_type in ("heading", "html"):
        warnings.append(f"{path}: a v3 {cell_type} cell became a markdown cell")
        cell_id = cell.get("id")
        cell = json_copy(upgrade_cell(nbformat.from_dict(cell)))
        cell.pop("id", None)
        if cell_id is not None:
            cell["id"] = cell_id
    elif cell_type not in ("code", "markdown", "raw"):
        warnings.append(f"{path}: unknown cell type {cell_type!r}; kept as a raw cell")
        _keep(cell, "cell_type", cell_type)
        cell["cell_type"] = "raw"
        for name in ("outputs", "execution_count"):
            if name in cell:
                _keep(cell, name, cell.pop(name))
    if "attachments" in cell:
        if isinstance(cell["attachments"], dict):
            cell["attachments"] = {
                name: join_bundle(bundle) for name, bundle in cell["attachments"].items()
            }
        else:
            warnings.append(f"{path}.attachments: not an object; kept under {REPAIRED_KEY}")
            _keep(cell, "attachments", cell.pop("attachments"))
    if cell["cell_type"] == "code":
        _parse_code_cell(cell, path, warnings)
    else:
        for name in ("outputs", "execution_count"):
            if name in cell:
                warnings.append(f"{path}: a {cell['cell_type']} cell has {name}; kept aside")
                _keep(cell, name, cell.pop(name))
    return cell


def _parse_code_cell(cell: dict[str, Any], path: str, warnings: list[str]) -> None:
    outputs = cell.get("outputs", [])
    if not isinstance(outputs, list):
        warnings.append(f"{path}.outputs: not a list; kept as one output")
        outputs = [outputs]
    cell["outputs"] = [
        _parse_output(o, f"{path}.outputs[{j}]", warnings) for j, o in enumerate(outputs)
    ]
    count = cell.get("execution_count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        warnings.append(f"{path}.execution_count: {count!r} is not an integer; cleared")
        cell["execution_count"] = None


def _parse_output(output: Any, path: str, warnings: list[str]) -> dict[str, Any]:
    kind = output.get("output_type") if isinstance(output, dict) else None
    if kind not in OUTPUT_TYPES:
        warnings.append(f"{path}: unknown output type {kind!r}; kept as a display_data")
        return {
            "output_type": "display_data",
            "data": {"text/plain": f"[an output of unknown type {kind!r} was kept here]"},
            "metadata": {REPAIRED_KEY: {"output": output}},
        }
    output = dict(output)
    output.pop("transient", None)
    if kind == "stream":
        text = join_lines(output.get("text", ""))
        if not isinstance(text, str):
            warnings.append(f"{path}.text: not a string; kept as its JSON")
            text = json.dumps(text)
        output["text"] = text
        if not isinstance(output.get("name"), str):
            warnings.append(f"{path}.name: missing; stdout is used")
            output["name"] = "stdout"
    elif kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        if not isinstance(data, dict):
            warnings.append(f"{path}.data: not an object; kept as its JSON text")
            data = {"text/plain": json.dumps(data)}
        output["data"] = join_bundle(data)
        if not isinstance(output.get("metadata", {}), dict):
            warnings.append(f"{path}.metadata: not an object; cleared")
            output["metadata"] = {}
        output.setdefault("metadata", {})
        if kind == "execute_result":
            output.setdefault("execution_count", None)
    return output


def _derived_id(index: int, cell: Mapping[str, Any]) -> str:
    digest = hashlib.sha1(f"{index}\0{cell['cell_type']}\0{cell['source']}".encode())
    return digest.hexdigest()[:12]


def _repair_ids(cells: list[dict[str, Any]], warnings: list[str], *, ids_expected: bool) -> None:
    """Keep valid unique ids; derive the missing or invalid ones; de-duplicate the rest."""
    seen: set[str] = set()
    for index, cell in enumerate(cells):
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not CELL_ID_PATTERN.match(cell_id):
            if cell_id is not None or ids_expected:
                warnings.append(f"cells[{index}]: invalid or missing id {cell_id!r} replaced")
            cell_id = _derived_id(index, cell)
        base, n = cell_id, 1
        while cell_id in seen:
            suffix = f"-{n}"
            cell_id = base[: 64 - len(suffix)] + suffix
            n += 1
        if cell_id != base:
            warnings.append(f"cells[{index}]: duplicate id {base!r} became {cell_id!r}")
        seen.add(cell_id)
        cell["id"] = cell_id
