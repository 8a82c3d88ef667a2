"""The change log: every committed Yjs update of every document, in order, in SQLite.

* ``append`` queues an update and answers with its version once it is on disk. Appends that
  arrive while a write is in flight are written together in one SQLite transaction (group
  commit), so a flood of small changes costs one disk write per batch, not per change.
* Versions are per document: 1, 2, 3, … in commit order; each has a time and an author.
* Every ``snapshot_interval`` versions a snapshot (the merged state so far, garbage-collected)
  is stored, so opening a document replays one snapshot plus fewer than ``snapshot_interval``
  updates however long its history is. The updates themselves are kept: any version can still
  be read (nearest snapshot at or before it, plus the updates after that snapshot).

Why not ``pycrdt.store.SQLiteYStore``: it orders updates by wall-clock time (which can go
backwards), writes one transaction per update, keeps one metadata value per store rather than
an author per version, and its squashing replaces history instead of indexing it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from ..errors import VersionNotFoundError
from .sqlite import SQLiteWorker, transaction

DDL = """
CREATE TABLE IF NOT EXISTS changes (
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    time REAL NOT NULL,
    author TEXT,
    data BLOB NOT NULL,
    PRIMARY KEY (doc, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS saves (
    doc TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    last_modified TEXT,
    size INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (doc, version)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Version:
    version: int
    time: float
    author: str | None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "time": self.time, "author": self.author}


@dataclass
class _Append:
    doc: str
    data: bytes
    author: str | None
    time: float
    future: asyncio.Future[int]


def _merged_state(snapshot: bytes | None, updates: list[bytes]) -> bytes:
    """One garbage-collected update equal to ``snapshot`` followed by ``updates``."""
    doc = Doc()
    if snapshot is not None:
        doc.apply_update(snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()


class ChangeLog:
    """Append-only, versioned log of document updates (see the module docstring)."""

    def __init__(self, worker: SQLiteWorker, *, snapshot_interval: int = 1000) -> None:
        if snapshot_interval < 1:
            raise ValueError("snapshot_interval must be at least 1")
        self.worker = worker
        self.snapshot_interval = snapshot_interval
        self._queue: list[_Append] = []
        self._flushing: asyncio.Task[None] | None = None
        # worker-thread state: last version and last snapshot version per document
        self._last: dict[str, int] = {}
        self._last_snapshot: dict[str, int] = {}

    async def open(self) -> None:
        await self.worker.ensure_schema(DDL)

    def open_blocking(self) -> None:
        """Create the tables from code that has no event loop (server start-up)."""
        self.worker.run_sync(lambda conn: conn.executescript(DDL))

    # -- writing ----------------------------------------------------------------------------

    def append(self, doc: str, data: bytes, author: str | None = None) -> asyncio.Future[int]:
        """Queue ``data`` for ``doc``; the future resolves to its version once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.append(_Append(doc, data, author, time.time(), future))
        if self._flushing is None or self._flushing.done():
            self._flushing = loop.create_task(self._flush())
        return future

    async def flushed(self) -> None:
        """Wait until every append queued so far is on disk."""
        while self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                versions = await self.worker.run(lambda conn, b=batch: self._write(conn, b))
            except Exception as exc:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, version in zip(batch, versions, strict=True):
                if not item.future.done():
                    item.future.set_result(version)

    def _last_version(self, conn: sqlite3.Connection, doc: str) -> int:
        last = self._last.get(doc)
        if last is None:
            row = conn.execute("SELECT MAX(version) FROM changes WHERE doc = ?", (doc,)).fetchone()
            last = self._last[doc] = row[0] or 0
            row = conn.execute(
                "SELECT MAX(version) FROM snapshots WHERE doc = ?", (doc,)
            ).fetchone()
            self._last_snapshot[doc] = row[0] or 0
        return last

    def _write(self, conn: sqlite3.Connection, batch: list[_Append]) -> list[int]:
        versions: list[int] = []
        last: dict[str, int] = {}
        with transaction(conn):
            for item in batch:
                version = last.get(item.doc) or self._last_version(conn, item.doc)
                version += 1
                conn.execute(
                    "INSERT INTO changes (doc, version, time, author, data) VALUES (?,?,?,?,?)",
                    (item.doc, version, item.time, item.author, item.data),
                )
                last[item.doc] = version
                versions.append(version)
        self._last.update(last)
        for doc in last:
            if self._last[doc] - self._last_snapshot.get(doc, 0) >= self.snapshot_interval:
                self._snapshot(conn, doc, self._last[doc])
        return versions

    def _snapshot(self, conn: sqlite3.Connection, doc: str, version: int) -> None:
        state = self._state_at(conn, doc, version)
        with transaction(conn):
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (doc, version, data) VALUES (?,?,?)",
                (doc, version, state),
            )
        self._last_snapshot[doc] = version

    # -- reading ----------------------------------------------------------------------------

    def _state_at(self, conn: sqlite3.Connection, doc: str, version: int) -> bytes:
        row = conn.execute(
            "SELECT version, data FROM snapshots WHERE doc = ? AND version <= ? "
            "ORDER BY version DESC LIMIT 1",
            (doc, version),
        ).fetchone()
        base_version, snapshot = (row[0], row[1]) if row else (0, None)
        updates = [
            r[0]
            for r in conn.execute(
                "SELECT data FROM changes WHERE doc = ? AND version > ? AND version <= ? "
                "ORDER BY version",
                (doc, base_version, version),
            )
        ]
        if snapshot is not None and not updates:
            return snapshot
        return _merged_state(snapshot, updates)

    async def load(self, doc: str) -> tuple[bytes | None, int]:
        """The document's current state as one update (``None`` if it has no history)."""
        await self.flushed()

        def read(conn: sqlite3.Connection) -> tuple[bytes | None, int]:
            last = self._last_version(conn, doc)
            if last == 0:
                return None, 0
            return self._state_at(conn, doc, last), last

        return await self.worker.run(read)

    async def state_at(self, doc: str, version: int) -> bytes:
        """The document as of ``version``, as one update."""
        await self.flushed()

        def read(conn: sqlite3.Connection) -> bytes:
            if not 1 <= version <= self._last_version(conn, doc):
                raise VersionNotFoundError(f"{doc} has no version {version}")
            return self._state_at(conn, doc, version)

        return await self.worker.run(read)

    async def versions(self, doc: str) -> list[Version]:
        """Every version of ``doc``, oldest first."""
        await self.flushed()
        rows = await self.worker.run(
            lambda conn: conn.execute(
                "SELECT version, time, author FROM changes WHERE doc = ? ORDER BY version",
                (doc,),
            ).fetchall()
        )
        return [Version(*row) for row in rows]

    async def last_version(self, doc: str) -> int:
        await self.flushed()
        return await self.worker.run(lambda conn: self._last_version(conn, doc))

    async def mark_saved(
        self, doc: str, version: int, last_modified: str | None, size: int | None
    ) -> None:
        """Remember which version is in the file, and the file's stamp after saving it."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO saves (doc, version, last_modified, size) VALUES (?,?,?,?)",
                (doc, version, last_modified, size),
            )

        await self.worker.run(write)

    async def last_saved(self, doc: str) -> tuple[int, str | None, int | None] | None:
        """``(version, last_modified, size)`` of the last save of ``doc``, if any."""
        return await self.worker.run(
            lambda conn: conn.execute(
                "SELECT version, last_modified, size FROM saves WHERE doc = ?", (doc,)
            ).fetchone()
        )

    async def forget(self, doc: str) -> None:
        """Delete a document's whole history (used when its file is deleted for good)."""
        await self.flushed()

        def delete(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM changes WHERE doc = ?", (doc,))
                conn.execute("DELETE FROM snapshots WHERE doc = ?", (doc,))
                conn.execute("DELETE FROM saves WHERE doc = ?", (doc,))
            self._last.pop(doc, None)
            self._last_snapshot.pop(doc, None)

        await self.worker.run(delete)
