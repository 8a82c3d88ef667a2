"""The last step of reading a damaged file: what still breaks nbformat's schema is moved aside.

``repair`` fixes the structure (cells, outputs, ids, texts). What can remain are values of the
wrong shape where the schema is strict: notebook metadata (a ``language_info`` that is null),
cell metadata (``collapsed`` that is not a boolean), an error output's fields, a negative
execution count. A file is first checked as a whole with ``fastjsonschema`` (nbformat's
dependency, compiled once); only a file that fails is repaired piece by piece against
nbformat's own v4.5 schema with ``jsonschema``, which names the field to fix (nbformat's
``validate`` reports one error for a whole ``oneOf`` of cell types). Sources and output data
are blanked in the copy that is checked — ``repair`` has made them valid already — and each
output is checked against its own type's definition alone, so the check costs what the
notebook's structure costs (about 8 µs a cell).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

#: where what could not stay is kept (cell or notebook metadata), so nothing is lost
REPAIRED_KEY = "cocalc_sync_repaired"
_PASSES = 4
#: the schema's output definitions, one per ``output_type`` (the ``oneOf`` of ``output``)
_OUTPUT_TYPES = ("execute_result", "display_data", "stream", "error")
#: what a required field that is missing gets (the export writes the same)
_DEFAULTS: dict[str, Any] = {"execution_count": None, "outputs": [], "metadata": {}, "source": ""}


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        resources.files("nbformat.v4").joinpath("nbformat.v4.5.schema.json").read_text()
    )
    return schema


@functools.cache
def _fast_check(definition: str) -> Callable[[Any], Any]:
    """A compiled ``fastjsonschema`` check (nbformat's dependency): a fast yes/no.

    One per cell type rather than the whole notebook's schema: its ``oneOf`` over cell types
    would try each cell three times.
    """
    import fastjsonschema

    return fastjsonschema.compile(_target(definition))


def is_valid(notebook: dict[str, Any]) -> bool:
    """Whether ``notebook`` (joined texts, any minor version) is valid nbformat 4.5."""
    import fastjsonschema

    try:
        _fast_check("")({**notebook, "nbformat_minor": 5, "cells": []})
        for cell in notebook["cells"]:
            light = _skeleton(cell)
            if cell["cell_type"] == "code" and isinstance(light.get("outputs"), list):
                # each output against its own type's definition: the schema's ``oneOf`` of
                # the four tries every type (an exception made for each that fails), and
                # one output can match no other than its ``output_type``'s
                outputs, light["outputs"] = light["outputs"], []
                for output in outputs:
                    kind = output.get("output_type") if isinstance(output, dict) else None
                    if kind not in _OUTPUT_TYPES:
                        return False
                    _fast_check(kind)(output)
            _fast_check(f"{cell['cell_type']}_cell")(light)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def _target(definition: str) -> dict[str, Any]:
    schema = _schema()
    if not definition:
        return schema
    return {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}


@functools.cache
def _validator(definition: str) -> jsonschema.Draft4Validator:
    import jsonschema

    return jsonschema.Draft4Validator(_target(definition))


def keep_aside(metadata: dict[str, Any], name: str, value: Any) -> None:
    kept = metadata.get(REPAIRED_KEY)
    if not isinstance(kept, dict):
        kept = metadata[REPAIRED_KEY] = {}
    kept[name] = value


def _skeleton(cell: dict[str, Any]) -> dict[str, Any]:
    """The cell without its (already valid, possibly large) texts and data."""
    light = {**cell, "source": ""}
    if "attachments" in light:
        light["attachments"] = {}
    if isinstance(cell.get("outputs"), list):
        light["outputs"] = [
            {**o, **{k: type(o[k])() for k in ("text", "data") if k in o}} for o in cell["outputs"]
        ]
    return light


def repair_cell_schema(
    cell: dict[str, Any],
    path: str,
    warnings: list[str],
    kept_output: Callable[[Any], dict[str, Any]],
) -> None:
    """Make ``cell`` (structurally repaired already) valid under nbformat's schema, in place.

    ``kept_output`` turns an invalid output into a valid one that keeps the original.
    """
    definition = f"{cell['cell_type']}_cell"
    for _ in range(_PASSES):
        errors = list(_validator(definition).iter_errors(_skeleton(cell)))
        if not errors:
            return
        for error in errors:
            _fix_cell(cell, list(error.path), error, path, warnings, kept_output)
    warnings.append(f"{path}: could not be made valid nbformat")


def _fix_cell(
    cell: dict[str, Any],
    where: list[str | int],
    error: jsonschema.ValidationError,
    path: str,
    warnings: list[str],
    kept_output: Callable[[Any], dict[str, Any]],
) -> None:
    metadata = cell.setdefault("metadata", {})
    if not where:
        # (an error from ``iter_errors`` has its validator's value and schema set)
        required, schema = error.validator_value, error.schema
        if error.validator == "required" and isinstance(required, list):
            for name in required:
                if name not in cell and name in _DEFAULTS:
                    cell[name] = copy.deepcopy(_DEFAULTS[name])
        elif error.validator == "additionalProperties" and isinstance(schema, Mapping):
            for name in [k for k in cell if k not in schema.get("properties", {})]:
                warnings.append(f"{path}.{name}: not a field of a {cell['cell_type']} cell")
                keep_aside(metadata, name, cell.pop(name))
        return
    head = where[0]
    if (
        head == "metadata"
        and len(where) > 1
        and isinstance(key := where[1], str)
        and key in metadata
    ):
        warnings.append(f"{path}.metadata.{key}: {error.message}; kept aside")
        keep_aside(metadata, key, metadata.pop(key))
    elif (
        head == "outputs"
        and len(where) > 1
        and isinstance(index := where[1], int)
        and index < len(cell.get("outputs", []))
    ):
        warnings.append(f"{path}.outputs[{index}]: {error.message}; kept aside")
        cell["outputs"][index] = kept_output(cell["outputs"][index])
    elif head == "execution_count":
        warnings.append(f"{path}.execution_count: {error.message}; cleared")
        cell["execution_count"] = None
    elif head in cell and head not in ("id", "cell_type", "source", "metadata"):
        warnings.append(f"{path}.{head}: {error.message}; kept aside")
        keep_aside(metadata, head, cell.pop(head))


def repair_metadata_schema(metadata: dict[str, Any], warnings: list[str]) -> None:
    """Move notebook metadata entries that break the schema aside, in place."""
    for _ in range(_PASSES):
        document = {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": []}
        names = {e.path[1] for e in _validator("").iter_errors(document) if len(e.path) > 1}
        names &= set(metadata) - {REPAIRED_KEY}
        if not names:
            return
        for name in sorted(names):
            warnings.append(f"metadata.{name}: not valid nbformat; kept aside")
            keep_aside(metadata, name, metadata.pop(name))
