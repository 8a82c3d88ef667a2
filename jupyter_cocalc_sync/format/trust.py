"""Which outputs JupyterLab may render with everything (scripts, widgets): the trust of cells.

JupyterLab reads a cell's trust from ``metadata.trusted`` of the shared cell. The runner marks
the cells it runs; a file keeps the trust it had on disk: a notebook whose signature is in
jupyter_server's signature store (``NotebookNotary``) is imported with its code cells trusted,
any other with them untrusted (what a ``trusted`` flag in the file itself says is not believed,
as jupyter_server's contents manager does not believe it). Saving goes through the contents
manager, which signs the file when all its code cells are trusted.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..sync.table import Record

log = logging.getLogger(__name__)

#: nbformat's: outputs whose content may run code when rendered fully
UNSAFE_OUTPUT_TYPES = ("execute_result", "display_data")
SAFE_KEYS = frozenset({"output_type", "execution_count", "metadata"})


class SignatureStore(Protocol):
    def check_signature(self, digest: str, algorithm: str) -> bool: ...


class Notary(Protocol):
    """What we use of nbformat's ``NotebookNotary``."""

    algorithm: str
    secret: bytes
    store: SignatureStore

    def compute_signature(self, nb: Any) -> str: ...


def notary_of(contents_manager: object) -> Notary | None:
    """The contents manager's notary (``None`` when it has none), its secret loaded (reading
    it is file I/O)."""
    notary: Notary | None = getattr(contents_manager, "notary", None)
    if notary is None:
        return None
    notary.secret  # noqa: B018 - loaded here, so the worker thread only hashes
    return notary


def signature_of(notary: Notary, nb: Mapping[str, Any]) -> str:
    """The notebook's signature (an HMAC of all of it: CPU work, for a worker thread)."""
    return notary.compute_signature(nb)


def is_signed(notary: Notary, signature: str) -> bool:
    """Whether the store knows ``signature`` (one indexed SQLite lookup)."""
    try:
        return bool(notary.store.check_signature(signature, notary.algorithm))
    except sqlite3.Error as e:  # (nbformat's store; unsigned, as nbformat reads it then)
        log.warning("the notebook signature store cannot be read: %s", e)
        return False


def outputs_need_trust(records: Iterable[Record]) -> bool:
    """Whether a code cell has an output whose trust decides how it renders: without one,
    every code cell is trusted whether the notebook is signed or not (``mark_code_cells``),
    so its signature (an HMAC of all of it) need not be computed."""
    return any(
        _needs_trust(output)
        for record in records
        if record.get("type") == "cell" and record.get("cell_type", "code") == "code"
        for output in (record.get("output") or {}).values()
    )


def mark_code_cells(records: list[Record], signed: bool) -> None:
    """Set ``metadata.trusted`` of every code cell record: all of them in a signed notebook,
    else those without outputs that need trust (nbformat's rule for a cell, ``_check_cell``).

    JupyterLab decides a cell's trust once, when it builds the cell: a cell without rich
    output is marked trusted now, so what the server runs in it later renders fully in every
    open tab.
    """
    for record in records:
        if record.get("type") == "cell" and record.get("cell_type", "code") == "code":
            trusted = signed or not any(
                _needs_trust(o) for o in (record.get("output") or {}).values()
            )
            record["metadata"] = {**(record.get("metadata") or {}), "trusted": trusted}


def _needs_trust(output: Any) -> bool:
    return (
        isinstance(output, dict)
        and output.get("output_type") in UNSAFE_OUTPUT_TYPES
        and bool(set(output) - SAFE_KEYS)
    )


def without_trust(nb: Mapping[str, Any]) -> dict[str, Any]:
    """``nb`` without its cells' ``metadata.trusted`` (never part of the file's content:
    nbformat drops it when writing), for comparing a saved notebook with its file."""
    cells = [
        {**cell, "metadata": {k: v for k, v in cell["metadata"].items() if k != "trusted"}}
        if isinstance(cell.get("metadata"), dict) and "trusted" in cell["metadata"]
        else cell
        for cell in nb.get("cells", [])
    ]
    return {**nb, "cells": cells}


def carry_trust(from_file: list[Record], live: list[Record]) -> None:
    """Give cells read from the file the trust they have live (a file edited out of band
    changes content; whether the server produced a cell's outputs is not in the file)."""
    trust = {
        r["id"]: (r.get("metadata") or {})["trusted"]
        for r in live
        if r.get("type") == "cell" and "trusted" in (r.get("metadata") or {})
    }
    for record in from_file:
        if record.get("type") == "cell" and record["id"] in trust:
            record["metadata"] = {**(record.get("metadata") or {}), "trusted": trust[record["id"]]}
