"""Plain JSON values as they live in a Yjs document.

Yjs stores every number as a 64-bit float, so a value read back from the document has ``1.0``
where ``1`` was written. ``from_crdt`` turns integral floats back into ints, which is what
Jupyter expects for execution counts, nbformat versions and image sizes; a float that happens
to be integral (``2.0``) therefore reads back as ``2``. That is the one normalisation of
values, documented in docs/design.md ("Normalisations of import → export").
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pycrdt import Array, Map, Text

_T = TypeVar("_T")

_SCALARS = (str, bool, type(None))
#: Yjs keeps numbers as doubles (and pycrdt panics on larger ints): integers must fit
MAX_SAFE_INTEGER = 2**53


def check_json(value: Any, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` unless ``value`` is plain, finite JSON."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, int):
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise ValueError(f"{path}: {item} is outside JSON's safe integer range (±2^53)")
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{path}: {item!r} is not a finite JSON number")
            continue
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"{path}: object key {key!r} is not a string")
                stack.append((sub, f"{path}.{key}"))
            continue
        if isinstance(item, (list, tuple)):
            stack.extend((sub, f"{path}[{i}]") for i, sub in enumerate(item))
            continue
        raise ValueError(f"{path}: {type(item).__name__} is not a JSON value")


def from_crdt(value: Any) -> Any:
    """A deep copy of ``value`` with integral floats turned back into ints; a shared type
    (``Map``, ``Array``, ``Text``) is read as its plain value first. Clients differ in how they
    write a notebook: JupyterLab writes an output as a ``Map``, ``jupyter-nbmodel-client`` as a
    plain JSON object in the cells' ``Array``; both read the same."""
    if isinstance(value, (Map, Array, Text)):
        value = value.to_py()
    return _ints(value)


def map_from_crdt(value: Map[Any]) -> dict[str, Any]:
    """``from_crdt`` of a ``Map`` (a record, an output): its entries as plain values."""
    return {key: from_crdt(sub) for key, sub in value.items()}


def _json_int(literal: str) -> int | float:
    # Yjs writes an integral double as an integer; the values checked in hold no integer
    # beyond ±2^53 (``check_json``), so one there was a double
    value = int(literal)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else float(value)


_decode_json = json.JSONDecoder(parse_int=_json_int).decode


def checked_from_crdt(value: Any) -> Any:
    """``from_crdt`` of a value checked in as plain JSON (``checked_map_from_crdt``)."""
    if isinstance(value, (Map, Array)):
        return _decode_json(str(value))
    if isinstance(value, Text):
        return str(value)
    return _ints(value)


def checked_map_from_crdt(value: Map[Any]) -> dict[str, Any]:
    """``map_from_crdt`` of a ``Map`` integrated in a document whose values were all checked
    in as plain JSON (``check_json``): the map's JSON from the document, decoded in C — one
    call into the document for the whole record instead of two per entry and value. (Not for
    unchecked maps: the JSON would hide a value that is not JSON, like bytes.)"""
    record: dict[str, Any] = _decode_json(str(value))
    return record


def read_back(value: Any) -> Any:
    """A copy of ``value`` (checked in as plain JSON) as ``checked_map_from_crdt`` reads it
    back once stored: integral numbers as ints (``from_crdt``), tuples as lists."""
    if isinstance(value, float):
        return _ints(value)
    if isinstance(value, dict):
        return {key: read_back(sub) for key, sub in value.items()}
    if isinstance(value, (list, tuple)):
        return [read_back(sub) for sub in value]
    return value


def _ints(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, dict):
        return {key: _ints(sub) for key, sub in value.items()}
    if isinstance(value, list):
        return [_ints(sub) for sub in value]
    return value


def same_json(a: Any, b: Any) -> bool:
    """JSON equality where ``1 == 1.0`` (Yjs numbers are floats) but ``True != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def json_copy(value: _T) -> _T:
    """A deep copy of a JSON value (faster than ``copy.deepcopy`` for plain data)."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}  # type: ignore[return-value]  # a dict copied is the same dict type
    if isinstance(value, list):
        return [json_copy(v) for v in value]  # type: ignore[return-value]  # likewise a list
    return value
