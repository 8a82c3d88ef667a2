"""The student version of an nbgrader assignment notebook, and the check for tampered cells.

``student_version`` does for one notebook what ``nbgrader generate_assignment`` does with its
default settings (without the gradebook database, headers and footers, or ``### AUTOTEST``
templates): lock cells, replace solutions by the language's stub, clear outputs, remove hidden
tests and mark schemes, and record each graded, solution or locked cell's checksum. nbgrader
computes checksums twice (its gradebook keeps the first); the notebook keeps the second, taken
after hidden tests were removed, and that is what grading checks a submission against.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..errors import AssignmentError
from .checksum import cell_source, compute_checksum, is_grade, is_locked, is_solution, is_task

#: what replaces a solution, per kernelspec language (nbgrader's defaults)
CODE_STUBS = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
    "R": "# YOUR CODE HERE\nfail()",
    "matlab": "% YOUR CODE HERE\nerror('No Answer Given!')",
    "octave": "% YOUR CODE HERE\nerror('No Answer Given!')",
    "sas": "/* YOUR CODE HERE */\n %notImplemented;",
    "java": "// YOUR CODE HERE",
}
TEXT_STUB = "YOUR ANSWER HERE"
SOLUTION = ("BEGIN SOLUTION", "END SOLUTION")
HIDDEN_TESTS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
MARK_SCHEME = ("BEGIN MARK SCHEME", "END MARK SCHEME")
#: cell metadata that clearing outputs removes (nbconvert's ClearOutputPreprocessor)
OUTPUT_METADATA = ("collapsed", "scrolled")

Cell = dict[str, Any]


def student_version(notebook: dict[str, Any]) -> dict[str, Any]:
    """A new nbformat dict: the notebook as students get it. ``AssignmentError`` (naming the
    cell) for unbalanced delimiters or regions outside cells marked for them."""
    student = copy.deepcopy(notebook)
    language = student.get("metadata", {}).get("kernelspec", {}).get("language", "python")
    if language not in CODE_STUBS:
        raise AssignmentError(f"no solution stub for kernel language {language!r}")
    cells: list[Cell] = student.get("cells", [])
    for cell in cells:
        cell["source"] = cell_source(cell)  # one string, as nbgrader reads it
        _lock(cell)
        _clear_solution(cell, CODE_STUBS[language])
        _clear_outputs(cell)
    for cell in cells:
        _remove_region(cell, HIDDEN_TESTS, allowed=is_grade, kind="'Autograder tests'")
        _remove_region(cell, MARK_SCHEME, allowed=is_task, kind="'Manually graded task'")
        _record_checksum(cell)
    student.get("metadata", {}).pop("celltoolbar", None)
    return student


def tampered_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    """Cells changed where students may not change them, as ``nbgrader validate`` finds
    them: a locked or read-only test cell whose checksum no longer matches (``"changed"``), or
    a graded cell whose type changed (``"type_changed"``). ``{"cell_id", "grade_id",
    "index", "reason"}`` each."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        meta = cell.get("metadata", {}).get("nbgrader") or {}
        reason = None
        if "cell_type" in meta and meta["cell_type"] != cell["cell_type"]:
            reason = "type_changed"
        elif is_locked(cell) and "checksum" in meta:
            try:
                matches = compute_checksum(cell) == meta["checksum"]
            except (KeyError, TypeError, ValueError):
                matches = False  # its nbgrader metadata was broken
            reason = None if matches else "changed"
        if reason is not None:
            where = {"cell_id": cell.get("id"), "grade_id": meta.get("grade_id"), "index": index}
            found.append({**where, "reason": reason})
    return found


def _lock(cell: Cell) -> None:
    metadata = cell.setdefault("metadata", {})
    if is_solution(cell):
        metadata["deletable"] = False
    elif is_grade(cell) or is_locked(cell):
        metadata["deletable"] = False
        metadata["editable"] = False


def _clear_solution(cell: Cell, code_stub: str) -> None:
    stub = code_stub if cell["cell_type"] == "code" else TEXT_STUB

    def indented_stub(begin_line: str) -> list[str]:
        indent = begin_line[: len(begin_line) - len(begin_line.lstrip())]
        return [indent + line for line in stub.split("\n")]

    found = _replace_regions(cell, SOLUTION, indented_stub)
    if found and not is_solution(cell):
        raise AssignmentError(
            f"cell {_name(cell)} has a solution region but is not a solution cell"
        )
    if not found and is_solution(cell):
        cell["source"] = stub


def _remove_region(
    cell: Cell, delimiters: tuple[str, str], *, allowed: Callable[[Cell], bool], kind: str
) -> None:
    found = _replace_regions(cell, delimiters, lambda _begin_line: [])
    if found and not allowed(cell):
        begin = delimiters[0]
        raise AssignmentError(f"cell {_name(cell)} has a {begin} region but is not a {kind} cell")


def _replace_regions(
    cell: Cell, delimiters: tuple[str, str], replacement: Callable[[str], list[str]]
) -> bool:
    """Replace each region from a line containing ``begin`` to one containing ``end`` (both
    included) by ``replacement(begin line)``; whether there was one."""
    begin, end = delimiters
    kept: list[str] = []
    inside = found = False
    for line in cell["source"].split("\n"):
        if begin in line:
            if inside:
                raise AssignmentError(f"cell {_name(cell)}: nested {begin}")
            inside = found = True
            kept.extend(replacement(line))
        elif end in line:
            inside = False
        elif not inside:
            kept.append(line)
    if inside:
        raise AssignmentError(f"cell {_name(cell)}: {begin} without {end}")
    if found:
        cell["source"] = "\n".join(kept)
    return found


def _clear_outputs(cell: Cell) -> None:
    if cell["cell_type"] != "code":
        return
    cell["outputs"] = []
    cell["execution_count"] = None
    for key in OUTPUT_METADATA:
        cell.get("metadata", {}).pop(key, None)


def _record_checksum(cell: Cell) -> None:
    if is_grade(cell) or is_solution(cell) or is_locked(cell):
        meta = cell["metadata"]["nbgrader"]
        try:
            meta["checksum"] = compute_checksum(cell)
        except KeyError as e:
            raise AssignmentError(f"cell {_name(cell)}: nbgrader metadata lacks {e}") from None
        meta["cell_type"] = cell["cell_type"]


def _name(cell: Cell) -> str:
    grade_id = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
    return repr(grade_id or cell.get("id"))
