"""Bases: a document whose first version is not stored, because it can be built again.

A JupyterLab client is sent a new YNotebook as the updates its build made, and comes back
(after an unload or a restart) holding those Yjs items, so the store must give the same items
again. Storing them costs as much as the notebook itself, a second time: the table's imported
version has the same text. A build is deterministic when it is made by the same Yjs client
from the same records (``ynotebook/writer.py``), so the store records instead that the
document's history starts from a **base**: the build named ``builder``, by Yjs client
``client_id``, of version ``source_version`` of the document ``source``; it made that client's
items up to clock ``clock`` (exclusive). The document's own versions are the updates made
after it.

Whoever replays such a document (a load, a snapshot, a squash; in the replay process) builds
the base first (``base_doc``), then applies the document's own updates. What it stores is
relative to the base (``relative_state``): the base's items are never written. The build
runs where the store is read, so its builder is found by name (``BUILDERS``): the build
belongs to the layer above the store, and a stored name outlives the code that wrote it.
Renaming or changing a builder breaks the documents built by it: a new build is a new name.

The source version of a base is never squashed away (``history.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from .protocol import StoreConnection

DDL = """
CREATE TABLE IF NOT EXISTS bases (
    doc TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    source_version INTEGER NOT NULL,
    builder TEXT NOT NULL,
    client_id INTEGER NOT NULL,
    clock INTEGER NOT NULL
) WITHOUT ROWID;
"""

#: builder name -> ``module:function``; the function takes ``(source state as one update,
#: Yjs client id)`` and returns the base built into a new ``Doc`` of that client
BUILDERS: dict[str, str] = {
    "ynotebook/1": "jupyter_cocalc_sync.ynotebook.base:canonical_ynotebook",
}

#: what the replay process is given of a base: ``(builder, client id, clock, the source's
#: snapshot, the source's updates after it up to the base's version)``
BaseInput = tuple[str, int, int, bytes | None, Sequence[bytes]]


@dataclass(frozen=True)
class Base:
    """Where a document's history starts from (module docstring)."""

    source: str
    source_version: int
    builder: str
    client_id: int
    clock: int


def write_base(conn: StoreConnection, doc: str, base: Base) -> None:
    if base.builder not in BUILDERS:
        raise ValueError(f"unknown base builder {base.builder!r}")
    conn.execute(
        "INSERT INTO bases (doc, source, source_version, builder, client_id, clock) "
        "VALUES (?,?,?,?,?,?) ON CONFLICT (doc) DO UPDATE SET source = excluded.source, "
        "source_version = excluded.source_version, builder = excluded.builder, "
        "client_id = excluded.client_id, clock = excluded.clock",
        (doc, base.source, base.source_version, base.builder, base.client_id, base.clock),
    )


def read_base(conn: StoreConnection, doc: str) -> Base | None:
    row = conn.execute(
        "SELECT source, source_version, builder, client_id, clock FROM bases WHERE doc = ?",
        (doc,),
    ).fetchone()
    return None if row is None else Base(*row)


def base_versions(conn: StoreConnection, source: str) -> set[int]:
    """The versions of ``source`` that bases are built from (never squashed away)."""
    rows = conn.execute("SELECT source_version FROM bases WHERE source = ?", (source,))
    return {row[0] for row in rows}


def builder(name: str) -> Callable[[bytes, int], Doc[Any]]:
    """The build named ``name`` (its module imported)."""
    try:
        module, function = BUILDERS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown base builder {name!r}") from None
    built: Callable[[bytes, int], Doc[Any]] = getattr(importlib.import_module(module), function)
    return built


def base_doc(base: BaseInput) -> Doc[Any]:
    """A new document holding the base (runs in the replay process)."""
    name, client_id, clock, snapshot, updates = base
    source: Doc[Any] = Doc()
    if snapshot is not None:
        source.apply_update(snapshot)
    for update in updates:
        source.apply_update(update)
    doc = builder(name)(source.get_update(), client_id)
    made = state_vector(doc.get_state()).get(client_id, 0)
    if made != clock:  # (another build than the stored one: its items are not the clients')
        raise ValueError(
            f"the base built by {name!r} is not the one stored: client {client_id} reached "
            f"clock {made}, the store says {clock}"
        )
    return doc


def relative_state(doc: Doc[Any], base: BaseInput) -> bytes:
    """``doc``'s state without the base's items (what is stored of a based document)."""
    _, client_id, clock, _, _ = base
    return doc.get_update(_write_var_uints([1, client_id, clock]))


def state_vector(encoded: bytes) -> dict[int, int]:
    """A Yjs state vector (lib0 encoding: a count, then client and clock pairs)."""
    numbers = _read_var_uints(encoded)
    count = numbers[0] if numbers else 0
    return {numbers[1 + 2 * i]: numbers[2 + 2 * i] for i in range(count)}


def _read_var_uints(data: bytes) -> list[int]:
    numbers: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            numbers.append(value)
            value = shift = 0
    return numbers


def _write_var_uints(numbers: list[int]) -> bytes:
    out = bytearray()
    for number in numbers:
        while number >= 0x80:
            out.append(0x80 | (number & 0x7F))
            number >>= 7
        out.append(number)
    return bytes(out)
