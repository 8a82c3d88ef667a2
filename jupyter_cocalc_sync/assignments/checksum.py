"""nbgrader's cell kinds and cell checksum.

The checksum must be byte-compatible with upstream nbgrader, which checks it when grading:
when nbgrader is installed its own ``nbgrader.utils.compute_checksum`` is used; otherwise the
same MD5 over the same fields in the same order — source, cell type, the grade / solution /
locked flags as Python's ``str(bool)``, the grade id, and for grade cells the points as
``str(float)`` (``"1.0"``, not ``"1"``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

Cell = Mapping[str, Any]


def nbgrader_metadata(cell: Cell) -> Mapping[str, Any] | None:
    value = (cell.get("metadata") or {}).get("nbgrader")
    return value if isinstance(value, Mapping) else None


def is_grade(cell: Cell) -> bool:
    return bool((nbgrader_metadata(cell) or {}).get("grade", False))


def is_solution(cell: Cell) -> bool:
    return bool((nbgrader_metadata(cell) or {}).get("solution", False))


def is_task(cell: Cell) -> bool:
    return bool((nbgrader_metadata(cell) or {}).get("task", False))


def is_locked(cell: Cell) -> bool:
    """Whether nbgrader treats the cell's source as fixed (grade cells that are not
    solutions are; solutions never are)."""
    meta = nbgrader_metadata(cell)
    if meta is None or is_solution(cell):
        return False
    return is_grade(cell) or bool(meta.get("locked", False))


def cell_source(cell: Cell) -> str:
    """The cell's source as one string (files may hold it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _compute_checksum(cell: Cell) -> str:
    digest = hashlib.md5()
    digest.update(cell_source(cell).encode())
    digest.update(str(cell["cell_type"]).encode())
    digest.update(str(is_grade(cell)).encode())
    digest.update(str(is_solution(cell)).encode())
    digest.update(str(is_locked(cell)).encode())
    meta = nbgrader_metadata(cell) or {}
    digest.update(str(meta["grade_id"]).encode())
    if is_grade(cell):
        digest.update(str(float(meta["points"])).encode())
    return digest.hexdigest()


@functools.cache
def _upstream() -> Callable[[Any], str] | None:
    try:
        from nbgrader.utils import compute_checksum
    except ImportError:
        return None
    upstream: Callable[[Any], str] = compute_checksum
    return upstream


def compute_checksum(cell: Cell) -> str:
    """nbgrader's checksum of a cell (an nbformat cell, as a dict or ``NotebookNode``)."""
    upstream = _upstream()
    if upstream is None:
        return _compute_checksum(cell)
    import nbformat

    return upstream(nbformat.from_dict({**cell, "source": cell_source(cell)}))
