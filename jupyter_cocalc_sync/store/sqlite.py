"""One SQLite database (WAL) owned by one worker thread.

Every statement runs on that thread, so the event loop never blocks on disk and SQLite never
sees two writers. ``synchronous=NORMAL`` in WAL mode makes a committed transaction survive the
death of the process (``kill -9``); only an operating-system crash can lose the last commits.

Where WAL is not safe (a network filesystem, see ``location.py``) the database runs with a
rollback journal instead: exclusive locking (no shared memory, the file stays locked while the
server runs) and ``synchronous=FULL`` (a rollback journal synced less can be corrupted by a
crash).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .location import Journal
from .protocol import STORE_ERRORS, Dialect, StoreClosedError, StoreConnection, transaction

__all__ = ["STORE_ERRORS", "SQLiteWorker", "StoreClosedError", "transaction"]

T = TypeVar("T")


class SQLiteWorker:
    """Runs callables ``fn(connection)`` on a single dedicated thread."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str | Path, *, journal: Journal = "wal") -> None:
        self.path = str(path)
        self.journal = journal
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cocalc-sqlite")
        self._local = threading.local()
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            if self.journal == "wal":
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            else:
                # exclusive first: the journal mode change then never maps shared memory
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
        return conn

    def describe(self) -> str:
        return self.path

    @property
    def session(self) -> int:
        return 1  # one connection for the life of the worker

    def run_sync(self, fn: Callable[[StoreConnection], T]) -> T:
        """Run ``fn`` on the worker thread and wait for it (for code off the event loop)."""
        if self._closed:
            raise StoreClosedError(f"store {self.path} is closed")
        return self._executor.submit(lambda: fn(self._connection())).result()

    async def run(self, fn: Callable[[StoreConnection], T]) -> T:
        """Run ``fn`` on the worker thread without blocking the event loop."""
        if self._closed:
            raise StoreClosedError(f"store {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    async def ensure_schema(self, ddl: str) -> None:
        """Create a component's tables (idempotent ``CREATE … IF NOT EXISTS`` statements),
        rebuilding any an older version created in another layout (``relayout``)."""
        await self.run(lambda conn: self._ensure_schema(ddl))

    def ensure_schema_blocking(self, ddl: str) -> None:
        """``ensure_schema`` for code that has no event loop (server start-up)."""
        self.run_sync(lambda conn: self._ensure_schema(ddl))

    def _ensure_schema(self, ddl: str) -> None:
        conn = self._connection()
        relayout(conn, ddl)
        conn.executescript(ddl)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def _close() -> None:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)


#: a table's statement in a component's DDL
TABLE_DDL = re.compile(
    r"CREATE TABLE IF NOT EXISTS (\w+)\s*\(.*?\)\s*(WITHOUT ROWID)?\s*;", re.DOTALL | re.IGNORECASE
)


def relayout(conn: sqlite3.Connection, ddl: str) -> list[str]:
    """Rebuild, rows kept, each table of ``ddl`` that exists as a ``WITHOUT ROWID`` table
    where ``ddl`` makes a rowid table, or the reverse; returns their names.

    Why it matters: a ``WITHOUT ROWID`` table is one b-tree keyed by the whole row, so a row
    holding a big value (a notebook's first version: megabytes) spills into overflow pages
    that every seek passing it reads whole to compare keys. With a few big notebooks in the
    change log, each look-up or insert, a keystroke's included, read tens of megabytes.
    A rowid table keeps its primary key in an index of its own, and a row's value is read
    only when asked for."""
    rebuilt = []
    for table in TABLE_DDL.finditer(ddl):
        name, without_rowid = table[1], table[2] is not None
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        if row is None or ("WITHOUT ROWID" in row[0].upper()) == without_rowid:
            continue
        old = f"{name}_old_layout"
        with transaction(conn):
            conn.execute(f"ALTER TABLE {name} RENAME TO {old}")
            conn.execute(table[0].rstrip().rstrip(";"))
            conn.execute(f"INSERT INTO {name} SELECT * FROM {old}")
            conn.execute(f"DROP TABLE {old}")
        rebuilt.append(name)
    return rebuilt
