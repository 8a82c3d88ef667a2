"""The change log's rows read and written on the store's thread: a document's state as its
last snapshot and the updates after it, what a based document's replay starts from, a
snapshot's row written a piece at a time, the versions, the last save, and a history deleted."""

from __future__ import annotations

import sqlite3

from .bases import BaseInput, read_base
from .protocol import StoreConnection, transaction


def read_state(
    conn: StoreConnection, doc: str, version: int
) -> tuple[int, bytes | None, list[bytes]]:
    """``(snapshot version, snapshot, updates after it up to version)``."""
    row = conn.execute(
        "SELECT version, data FROM snapshots WHERE doc = ? AND version <= ? "
        "ORDER BY version DESC LIMIT 1",
        (doc, version),
    ).fetchone()
    base, snapshot = (row[0], row[1]) if row else (0, None)
    return base, snapshot, read_updates(conn, doc, base, version)


def read_base_input(conn: StoreConnection, doc: str) -> BaseInput | None:
    """What a replay of ``doc`` starts from, if it is a based document (``bases.py``)."""
    base = read_base(conn, doc)
    if base is None:
        return None
    _, snapshot, updates = read_state(conn, base.source, base.source_version)
    return (base.builder, base.client_id, base.clock, snapshot, updates)


def read_updates(conn: StoreConnection, doc: str, after: int, upto: int) -> list[bytes]:
    """The logged updates of versions ``after < version <= upto``, in order."""
    rows = conn.execute(
        "SELECT data FROM changes WHERE doc = ? AND version > ? AND version <= ? ORDER BY version",
        (doc, after, upto),
    )
    return [r[0] for r in rows]


#: a snapshot at least this big is written to SQLite a piece of this size at a time
BLOB_PIECE = 1 << 20

_STORE_SNAPSHOT = (
    "INSERT INTO snapshots (doc, version, data) VALUES (?,?,{data}) "
    "ON CONFLICT (doc, version) DO UPDATE SET data = excluded.data"
)


def store_snapshot(conn: StoreConnection, doc: str, version: int, state: bytes) -> None:
    """Store ``state`` as the snapshot of ``doc`` at ``version`` (on the worker thread).

    SQLite copies a bound blob whole while the caller holds the GIL (20 MB: 20–50 ms, a stall
    of the event loop though this runs on the store's thread): a big snapshot's row gets a
    zero blob of its size, then its bytes ``BLOB_PIECE`` at a time, each write without the
    GIL, in one transaction."""
    if not isinstance(conn, sqlite3.Connection) or len(state) < BLOB_PIECE:
        conn.execute(_STORE_SNAPSHOT.format(data="?"), (doc, version, state))
        return
    with transaction(conn):
        conn.execute(_STORE_SNAPSHOT.format(data="zeroblob(?)"), (doc, version, len(state)))
        (rowid,) = conn.execute(
            "SELECT rowid FROM snapshots WHERE doc = ? AND version = ?", (doc, version)
        ).fetchone()
        with conn.blobopen("snapshots", "data", rowid) as blob:
            view = memoryview(state)
            for start in range(0, len(view), BLOB_PIECE):
                blob.write(view[start : start + BLOB_PIECE])


def has_version(conn: StoreConnection, doc: str, version: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM changes WHERE doc = ? AND version = ?", (doc, version)
    ).fetchone()
    return row is not None


def read_versions(conn: StoreConnection, doc: str) -> list[tuple[int, float, str | None]]:
    """``(version, time, author)`` of every retained version, oldest first."""
    rows: list[tuple[int, float, str | None]] = conn.execute(
        "SELECT version, time, author FROM changes WHERE doc = ? ORDER BY version", (doc,)
    ).fetchall()
    return rows


def write_save(
    conn: StoreConnection, doc: str, version: int, last_modified: str | None, size: int | None
) -> None:
    """Which version is in the file, and the file's stamp after saving it."""
    conn.execute(
        "INSERT INTO saves (doc, version, last_modified, size) VALUES (?,?,?,?) "
        "ON CONFLICT (doc) DO UPDATE SET version = excluded.version, "
        "last_modified = excluded.last_modified, size = excluded.size",
        (doc, version, last_modified, size),
    )


def read_save(conn: StoreConnection, doc: str) -> tuple[int, str | None, int | None] | None:
    """``(version, last_modified, size)`` of the last save of ``doc``, if any."""
    row: tuple[int, str | None, int | None] | None = conn.execute(
        "SELECT version, last_modified, size FROM saves WHERE doc = ?", (doc,)
    ).fetchone()
    return row


def delete_history(conn: StoreConnection, doc: str) -> None:
    """Every row of ``doc``: its changes, snapshots, last save and base."""
    with transaction(conn):
        for table in ("changes", "snapshots", "saves", "bases"):
            conn.execute(f"DELETE FROM {table} WHERE doc = ?", (doc,))
