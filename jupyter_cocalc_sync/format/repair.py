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
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotebookFormatError
from ..sync.table import json_copy
from ..sync.values import MAX_SAFE_INTEGER
from .schema_repair import (
    REPAIRED_KEY,
    is_valid,
    keep_aside,
    repair_cell_schema,
    repair_metadata_schema,
)

NBFORMAT = 4
NBFORMAT_MINOR = 5
OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")

CELL_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass
class LoadedNotebook:
    """A parsed notebook (nbformat 4, joined strings) and what had to be repaired."""

    notebook: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def join_lines(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    try:
        return "".join(value)  # a list of lines, as nbformat writes them
    except TypeError:
        # anything else in it (a damaged file) is kept as its JSON text
        return "".join(line if isinstance(line, str) else json.dumps(line) for line in value)


#: MIME types whose value in a bundle is any JSON; every other one is text (nbformat's schema)
JSON_MIME = re.compile(r"^application/(.*\+)?json$")


def join_bundle(bundle: dict[str, Any], path: str, warnings: list[str]) -> dict[str, Any]:
    """A MIME bundle with its text values joined; a text value that is no text becomes its JSON."""
    joined = {}
    for mime, data in bundle.items():
        if not JSON_MIME.match(mime):
            data = join_lines(data)
            if not isinstance(data, str):
                warnings.append(f"{path}.{mime}: not text; kept as its JSON")
                data = json.dumps(data)
        joined[mime] = data
    return joined


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
    loaded = LoadedNotebook({})
    if isinstance(source, str):
        try:
            raw = _loads_yjs_numbers(source, loaded.warnings)
        except json.JSONDecodeError as e:
            raise _fail("", f"not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    else:
        raw = json_copy(dict(source))
        _repair_numbers(raw, loaded.warnings)
    if not isinstance(raw, dict):
        raise _fail("", f"the top level must be an object, not {type(raw).__name__}")
    major = raw.get("nbformat")
    if major is None and isinstance(raw.get("cells"), list):
        loaded.warnings.append("no nbformat version: read as nbformat 4")
        major = NBFORMAT
    if isinstance(major, float) and major.is_integer():
        major = raw["nbformat"] = int(major)  # JSON Schema's integers include 4.0
    if isinstance(major, bool) or not isinstance(major, int):
        # (``true == 1`` in Python: a boolean would pass for version 1)
        raise _fail("nbformat", f"the version must be an integer, not {major!r}")
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
    if not is_valid(loaded.notebook):
        # the slow path, field by field, only for files that need it
        repair_metadata_schema(metadata, loaded.warnings)
        for i, cell in enumerate(parsed):
            repair_cell_schema(cell, f"cells[{i}]", loaded.warnings, kept_output)
    return loaded


def _loads_yjs_numbers(text: str, warnings: list[str]) -> Any:
    """``json.loads`` with the numbers Yjs cannot hold made into ones it can as they are read
    (as ``_repair_numbers`` does to a parsed document, without walking every string of it:
    a notebook is mostly text, and numbers are few)."""
    counts = {"integers": 0, "non-finite": 0}

    def parse_int(literal: str) -> int | float:
        value = int(literal)
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        counts["integers"] += 1
        return float(value)

    def parse_float(literal: str) -> float | None:
        value = float(literal)
        if math.isfinite(value):
            return value
        counts["non-finite"] += 1  # (1e999)
        return None

    def parse_constant(literal: str) -> None:
        counts["non-finite"] += 1  # NaN, Infinity, -Infinity
        return None

    raw = json.loads(
        text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant
    )
    _number_warnings(counts, warnings)
    return raw


def _number_warnings(counts: dict[str, int], warnings: list[str]) -> None:
    if counts["integers"]:
        warnings.append(f"{counts['integers']} integer(s) beyond ±2^53 read as doubles")
    if counts["non-finite"]:
        warnings.append(f"{counts['non-finite']} NaN/Infinity value(s) read as null")


def _repair_numbers(raw: dict[str, Any], warnings: list[str]) -> None:
    """Numbers a JSON document of Yjs cannot hold, made into ones it can (in place).

    Python's ``json`` reads integers of any size and ``NaN``/``Infinity``; Yjs (like the
    browser's ``JSON.parse``) has doubles only. An integer beyond ±2^53 becomes the double
    JupyterLab would show for it; a non-finite number becomes ``null``.
    """
    counts = {"integers": 0, "non-finite": 0}
    stack: list[Any] = [raw]
    while stack:
        container = stack.pop()
        keys = container.keys() if isinstance(container, dict) else range(len(container))
        for key in keys:
            value = container[key]
            if isinstance(value, (dict, list)):
                stack.append(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                    container[key] = float(value)
                    counts["integers"] += 1
            elif isinstance(value, float) and not math.isfinite(value):
                container[key] = None
                counts["non-finite"] += 1
    _number_warnings(counts, warnings)


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    import nbformat  # here: importing it costs seconds of CPU (jsonschema's format grammars)

    try:
        # nbformat's own reader joins v3's lists of lines before it upgrades (not
        # ``nbformat.reads``: it logs an ERROR for the invalid notebook this module repairs)
        nb = nbformat.convert(nbformat.reader.reads(json.dumps(raw)), NBFORMAT)
    except (
        nbformat.ValidationError,
        ValueError,
        LookupError,
        TypeError,
        AttributeError,
        UnboundLocalError,
    ) as e:
        # (what nbformat's upgrade code raises on the malformed structures an old file has:
        # a missing key it checks, or one it reads, a value of the wrong type, a v1 cell type
        # it has no branch for)
        raise _fail("", f"cannot upgrade nbformat {raw.get('nbformat')}: {e}") from None
    upgraded: dict[str, Any] = json.loads(json.dumps(nb))
    # ids made up by the upgrade are random: derive them instead (deterministic import)
    for cell in upgraded.get("cells", []):
        if isinstance(cell, dict):
            cell.pop("id", None)
    return upgraded


def _repair_kernelspec(metadata: dict[str, Any], warnings: list[str]) -> None:
    if "kernelspec" not in metadata:
        return
    spec = metadata["kernelspec"]
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
    keep_aside(cell["metadata"], name, value)


def _parse_cell(raw: Any, path: str, warnings: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        warnings.append(f"{path}: not an object; kept as a raw cell holding its JSON")
        return {"cell_type": "raw", "source": json.dumps(raw), "metadata": {}}
    cell: dict[str, Any] = dict(raw)
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
        import nbformat  # here: see _upgrade
        from nbformat.v4.convert import upgrade_cell

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
        attachments = cell["attachments"]
        if isinstance(attachments, dict) and all(isinstance(b, dict) for b in attachments.values()):
            cell["attachments"] = {
                name: join_bundle(bundle, f"{path}.attachments.{name}", warnings)
                for name, bundle in attachments.items()
            }
        else:
            warnings.append(f"{path}.attachments: not bundles; kept under {REPAIRED_KEY}")
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


def kept_output(output: Any) -> dict[str, Any]:
    """A valid output that shows an invalid one was here, and keeps it in its metadata."""
    kind = output.get("output_type") if isinstance(output, dict) else None
    return {
        "output_type": "display_data",
        "data": {"text/plain": f"[an invalid output of type {kind!r} was kept here]"},
        "metadata": {REPAIRED_KEY: {"output": output}},
    }


def _parse_output(raw: Any, path: str, warnings: list[str]) -> dict[str, Any]:
    kind = raw.get("output_type") if isinstance(raw, dict) else None
    if kind not in OUTPUT_TYPES:
        warnings.append(f"{path}: unknown output type {kind!r}; kept as a display_data")
        return kept_output(raw)
    output: dict[str, Any] = dict(raw)
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
        output["data"] = join_bundle(data, f"{path}.data", warnings)
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
