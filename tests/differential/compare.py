"""Comparing what the two servers made of a sequence, after the deliberate differences.

Each normalisation below is one entry of "Deliberate differences" in ``tests/README.md``;
anything else that differs is a failure.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import nbformat

from jupyter_cocalc_sync.format.ipynb import records_to_notebook

from .runner import Outcome

Json = Any
#: the ``state`` map's bookkeeping, written by each server when it saves (``dirty``, ``hash``)
#: or opens a room (``document_id``): when differs with the save timing, not with the notebook
STATE_BOOKKEEPING = ("dirty", "hash", "document_id")


def normal_view(view: dict[str, Any]) -> dict[str, Any]:
    """A client's view without the deliberate differences."""
    view = copy.deepcopy(view)
    for cell in view["cells"]:
        _normal_cell_metadata(cell)
    view["state"] = {k: v for k, v in view["state"].items() if k not in STATE_BOOKKEEPING}
    return view


def canonical(notebook: dict[str, Any]) -> dict[str, Any]:
    """A notebook as nbformat writes it (sources and texts as lists of lines)."""
    return json.loads(nbformat.writes(nbformat.from_dict(copy.deepcopy(notebook))))


def normal_file(notebook: dict[str, Any]) -> dict[str, Any]:
    notebook = canonical(notebook)
    for cell in notebook["cells"]:
        _normal_cell_metadata(cell)
        # an empty attachments object: ours saves it as the cell has it, stock leaves it out
        if cell.get("attachments") == {}:
            del cell["attachments"]
    return notebook


def _normal_cell_metadata(cell: dict[str, Any]) -> None:
    metadata = cell.get("metadata")
    if not isinstance(metadata, dict):
        return
    # trust: ours marks cells trusted by nbformat's per-cell rule (design notes: Widgets and trust)
    metadata.pop("trusted", None)
    # tags: a set in the table, exported sorted (design notes: "Tags")
    tags = metadata.get("tags")
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        metadata["tags"] = sorted(set(tags))


def differences(a: Json, b: Json, where: str = "") -> list[str]:
    """Readable differences between two JSON values (``where``: the path to them)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in a:
                found.append(f"{path}: missing in stock, ours {_short(b[key])}")
            elif key not in b:
                found.append(f"{path}: stock {_short(a[key])}, missing in ours")
            else:
                found.extend(differences(a[key], b[key], path))
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        found = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found.extend(differences(x, y, f"{where}[{i}]"))
        return found
    if isinstance(a, list) and isinstance(b, list) and all(_has_id(x) for x in a + b):
        return [f"{where}: stock ids {[x['id'] for x in a]}, ours ids {[x['id'] for x in b]}"]
    if (type(a) is not type(b) and not (_number(a) and _number(b))) or a != b:
        return [f"{where}: stock {_short(a)}, ours {_short(b)}"]
    return []


def _has_id(value: Any) -> bool:
    return isinstance(value, dict) and "id" in value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Json) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) < 300 else text[:300] + "…"


#: ids the test clients give new cells (``LabClient.new_cell_id``)
CLIENT_ID = re.compile(r"^[0-9a-f]{8}-0000-4000-8000-000000000000$")
RENAMED = "<renamed>"


def as_inserted(ours: Outcome) -> Outcome:
    """Ours's views and file with the id each cell was inserted with where ours gave it a new
    one at once (``Outcome.assigned``): stock keeps that id until a save renames one of the
    cells sharing it, or for good if the others are deleted first (see "A cell inserted with
    an id another cell has")."""
    return dataclasses.replace(
        ours,
        live=_with_ids(ours.live, ours.assigned),
        observer=_with_ids(ours.observer, ours.assigned),
        joiner=_with_ids(ours.joiner, ours.assigned),
        file=_with_ids(ours.file, ours.assigned),
    )


def _with_ids(notebook: dict[str, Any], inserted_with: dict[str, str]) -> dict[str, Any]:
    notebook = copy.deepcopy(notebook)
    for cell in notebook["cells"]:
        if cell.get("id") in inserted_with:
            cell["id"] = inserted_with[cell["id"]]
    return notebook


def renamed_ids(stock: Outcome, ours: Outcome, initial: dict[str, Any]) -> set[str]:
    """The ids of cells that shared an id with another cell, on either server (ours taken
    ``as_inserted``), and the new ids stock's saves gave them (see "A cell inserted with an
    id another cell has")."""
    known = {c["id"] for c in initial["cells"]}
    renamed: set[str] = set()
    for outcome in (stock, ours):
        for view in (outcome.live, outcome.observer, outcome.joiner, outcome.file):
            ids = [c["id"] for c in view["cells"] if "id" in c]
            renamed |= {i for i in ids if ids.count(i) > 1}
            if outcome is stock:
                renamed |= {i for i in ids if i not in known and not CLIENT_ID.match(str(i))}
    return renamed


def _rename(notebook: dict[str, Any], renamed: set[str]) -> dict[str, Any]:
    for cell in notebook["cells"]:
        if cell.get("id") in renamed:
            cell["id"] = RENAMED
    return notebook


def _without_exact_duplicates(notebook: dict[str, Any]) -> dict[str, Any]:
    """Stock leaves an exact copy of an earlier cell (id included) out of the file: so does
    this, for the cells whose id was shared (see "A cell inserted with an id another cell
    has" in tests/README.md), after ``_without_nulls`` on both files (so that it leaves out
    of both the copies that differed from their originals by a null only)."""
    kept: list[dict[str, Any]] = []
    for cell in notebook["cells"]:
        if not (cell.get("id") == RENAMED and cell in kept):
            kept.append(cell)
    notebook["cells"] = kept
    return notebook


def _without_nulls(notebook: dict[str, Any]) -> dict[str, Any]:
    """Metadata keys set to null: the table keeps null as "no such key" (docs: "Records"),
    so ours saves them without the key."""
    for metadata in [notebook["metadata"], *(c.get("metadata") for c in notebook["cells"])]:
        if isinstance(metadata, dict):
            for key in [k for k, v in metadata.items() if v is None]:
                del metadata[key]
    return notebook


def _valid_kernelspec(stock_file: dict[str, Any], our_file: dict[str, Any]) -> None:
    """A kernelspec that is not nbformat's (an object with a string ``name``): stock saves it
    as it is (an invalid notebook), ours saves the notebook's kernel."""
    kernelspec = stock_file["metadata"].get("kernelspec")
    if not (isinstance(kernelspec, dict) and isinstance(kernelspec.get("name"), str)):
        stock_file["metadata"].pop("kernelspec", None)
        our_file["metadata"].pop("kernelspec", None)


def _same_format(stock_file: dict[str, Any], our_file: dict[str, Any]) -> dict[str, Any]:
    """Ours written as stock writes a notebook whose ``nbformat_minor`` a client lowered:
    ours always writes nbformat 4.5, with cell ids (design notes: "Normalisations")."""
    minor = stock_file.get("nbformat_minor")
    if isinstance(minor, int) and minor < 5:
        our_file["nbformat_minor"] = minor
        for cell in our_file["cells"]:
            cell.pop("id", None)
    return our_file


def compare(stock: Outcome, ours: Outcome, initial: dict[str, Any]) -> list[str]:
    """Every difference between the servers (and within ours) that is not deliberate."""
    renamed = renamed_ids(stock, as_inserted(ours), initial)
    found = [f"ours: {m}" for m in ours.misplaced]
    for name in ("live", "observer", "joiner"):
        stock_view = _rename(normal_view(getattr(stock, name)), renamed)
        our_view = _with_ids(normal_view(getattr(ours, name)), ours.assigned)
        our_view = _rename(our_view, renamed)
        found += [f"{name} client: {d}" for d in differences(stock_view, our_view)]
    # (ids taken back after nbformat's writing, which would rename the cells sharing one)
    our_file = _rename(_with_ids(normal_file(ours.file), ours.assigned), renamed)
    stock_file = _without_nulls(_rename(normal_file(stock.file), renamed))
    # nulls first: a copy that differs from its original only by a null stays in stock's file
    stock_file = _without_exact_duplicates(stock_file)
    our_file = _without_exact_duplicates(_without_nulls(our_file))
    our_file = _same_format(stock_file, our_file)
    _valid_kernelspec(stock_file, our_file)
    found += [f"file: {d}" for d in differences(stock_file, our_file)]
    if ours.save_status != "success":
        found.append(f"ours answered the save with {ours.save_status!r}")
    # ours alone: the REST records say what the file says, and history has every change
    rest = normal_file(records_to_notebook(ours.records))
    found += [f"ours, REST vs file: {d}" for d in differences(normal_file(ours.file), rest)]
    found += [f"ours logged: {e}" for e in ours.errors]
    return found


def gained_history(initial: dict[str, Any], ours: Outcome) -> list[str]:
    """A sequence that changed the notebook left at least one version in ours' history."""
    before, after = ours.versions
    if normal_file(initial) != normal_file(ours.file) and after <= before:
        return [f"ours: the notebook changed but history stayed at {before} versions"]
    return []
