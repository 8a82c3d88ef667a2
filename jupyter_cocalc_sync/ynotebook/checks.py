"""What a JupyterLab peer may write into the YNotebook: cells the projection can translate.

The projection turns YNotebook changes into table records, which ``SyncDB.check`` refuses when
malformed; but by then the YNotebook has the change, and the cell stays out of step with the
table. So a peer's update is checked first (``UpdateGuard``): every cell it touched must be a
map with an id, a known type, a text source, JSON metadata, and (code cells) an integer or
null execution count and outputs that are objects with an ``output_type``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrdt import Array, Doc, Map, Text

from ..errors import InvalidRecordError
from ..format.schema import CELL_TYPES
from ..sync.guard import RootKind, Touched, UpdateGuard, split_touched
from ..sync.values import check_json, from_crdt, map_from_crdt


class YNotebookChecker:
    roots: Mapping[str, RootKind] = {"cells": Array, "meta": Map}
    checks_fields = False

    def check(self, shadow: Doc[Any], touched: Touched) -> None:
        whole, texts = split_touched(touched.get("cells", ()))
        # any text is a source: typing into one (the characters of a Text) needs no check
        whole.update(index for index, fields in texts.items() if fields != {"source"})
        if whole:  # (typing reads no cell)
            cells = shadow.get("cells", type=Array)
            count = len(cells)
            for index in whole:
                if isinstance(index, int) and index < count:
                    check_cell(cells[index], index)
        if touched.get("meta"):
            metadata = shadow.get("meta", type=Map).get("metadata")
            if metadata is not None:
                _json(from_crdt(metadata), "notebook metadata")


def check_cell(ycell: object, index: int) -> None:
    """Raise ``InvalidRecordError`` unless ``ycell`` is a cell the projection can translate."""
    where = f"cell {index}"
    if not isinstance(ycell, Map):
        raise InvalidRecordError(f"{where} is not a map")
    cell = map_from_crdt(ycell)
    cell_id = cell.get("id")
    if not isinstance(cell_id, str) or not cell_id:
        raise InvalidRecordError(f"{where}: the id must be a non-empty string")
    if cell.get("cell_type") not in CELL_TYPES:
        raise InvalidRecordError(f"{where}: cell_type must be one of {CELL_TYPES}")
    if not isinstance(ycell.get("source"), (Text, str)):
        raise InvalidRecordError(f"{where}: source must be a text")
    for name in ("metadata", "attachments"):
        if cell.get(name) is not None and not isinstance(cell[name], dict):
            raise InvalidRecordError(f"{where}: {name} must be an object")
    count = cell.get("execution_count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise InvalidRecordError(f"{where}: execution_count must be an integer or null")
    outputs = cell.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise InvalidRecordError(f"{where}: outputs must be a list")
        for output in outputs:
            if not isinstance(output, dict) or not isinstance(output.get("output_type"), str):
                raise InvalidRecordError(f"{where}: every output needs an output_type")
    _json(cell, where)


def _json(value: Any, where: str) -> None:
    try:
        check_json(value, where)
    except ValueError as e:
        raise InvalidRecordError(str(e)) from None


def ynotebook_guard(ydoc: Doc[Any]) -> UpdateGuard:
    """The guard of a notebook's JupyterLab room."""
    return UpdateGuard(ydoc, YNotebookChecker())
