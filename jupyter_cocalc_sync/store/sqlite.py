"""One SQLite database (WAL) owned by one worker thread.

Every statement runs on that thread, so the event loop never blocks on disk and SQLite never
sees two writers. ``synchronous=NORMAL`` in WAL mode makes a committed transaction survive the
death of the process (``kill -9``); only an operating-system crash can lose the last commits.

One exception, for latency: a small write may run on the caller's thread (``run_inline``) when
the worker is idle. A WAL commit at ``synchronous=NORMAL`` is an append to the WAL file, no
``fsync`` (tens of microseconds), while handing it to the worker thread and back costs two
thread wake-ups (milliseconds on a loaded machine), on the path of every keystroke. It is the
same commit on the same connection, so it is exactly as durable, and it never overtakes a job
handed to the worker before it (``_jobs``). What could make it slow is
kept off it: the connection runs without waiting for the write lock while it commits inline
(``_inline_mode``; every job on the worker thread turns the wait back on), and after
``INLINE_RUNS`` inline commits in a row the next write goes to the worker.

Checkpoints (copying the WAL into the database, and syncing both) run on the worker thread
once a job's result is handed back, when the WAL holds ``CHECKPOINT_FRAMES`` pages not yet
copied (SQLite's own automatic checkpoint, which runs inside the ``COMMIT`` that crosses that
size, is off): a commit is as durable before its checkpoint as after it, and the writer of a
big notebook (an import logs all of it) does not wait for the copy of it. The WAL stays
bounded as with SQLite's default.

Where WAL is not safe (a network filesystem, see ``location.py``) the database runs with a
rollback journal instead: exclusive locking (no shared memory, the file stays locked while the
server runs) and ``synchronous=FULL`` (a rollback journal synced less can be corrupted by a
crash). Every commit syncs there, so nothing runs inline.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..errors import StoreClosedError
from .location import Journal
from .protocol import STORE_ERRORS, Dialect, NotInline, StoreConnection, transaction

__all__ = ["STORE_ERRORS", "NotInline", "SQLiteWorker", "StoreClosedError", "transaction"]

T = TypeVar("T")

#: milliseconds a worker job waits for the write lock (another process reading the store)
BUSY_TIMEOUT_MS = 10000
#: inline commits in a row before one goes to the worker (and checkpoints, when due)
INLINE_RUNS = 200
#: WAL pages not yet copied into the database that make a checkpoint due (SQLite's default
#: ``wal_autocheckpoint``)
CHECKPOINT_FRAMES = 1000

log = logging.getLogger(__name__)


#: the WAL index's header (native byte order): ``mxFrame``, the last valid frame of the WAL, in
#: the first copy of ``WalIndexHdr``, and ``nBackfill``, the frames copied into the database,
#: first in ``WalCkptInfo``, after the header's two copies of 48 bytes
_MAX_FRAME_OFFSET = 16
_CKPT_INFO_OFFSET = 96


class SQLiteWorker:
    """Runs callables ``fn(connection)`` on a single dedicated thread (or, for small writes
    while it is idle, on the caller's: ``run_inline``)."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str | Path, *, journal: Journal = "wal") -> None:
        self.path = str(path)
        self.journal = journal
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cocalc-sqlite")
        self._conn: sqlite3.Connection | None = None
        #: held by whoever uses the connection: a worker job, or an inline run
        self._using = threading.Lock()
        #: jobs handed to the worker and not finished (an inline run would overtake them)
        self._jobs = 0
        self._jobs_lock = threading.Lock()
        #: the connection is set up for inline commits (no auto-checkpoint, no busy wait)
        self._inline_mode = False
        self._inline_runs = 0
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # (used by the worker thread and by inline runs, never at once: ``_using``)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if self.journal == "wal":
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA wal_autocheckpoint=0")  # ``_checkpoint_if_due``
            else:
                # exclusive first: the journal mode change then never maps shared memory
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._conn = conn
        return conn

    def _submit(self, fn: Callable[[StoreConnection], T]) -> Future[T]:
        with self._jobs_lock:
            self._jobs += 1
        done: Future[T] = Future()
        try:
            self._executor.submit(self._job, fn, done)
        except BaseException:
            self._job_done()
            raise
        return done

    def _job_done(self) -> None:
        with self._jobs_lock:
            self._jobs -= 1

    def _job(self, fn: Callable[[StoreConnection], T], done: Future[T]) -> None:
        """Run ``fn`` on the worker thread, with the connection as worker jobs have it; hand
        its outcome to ``done``, then checkpoint the WAL if that is due."""
        if not done.set_running_or_notify_cancel():  # cancelled while it waited: not run
            self._job_done()
            return
        try:
            with self._using:
                conn = self._connection()
                if self._inline_mode:
                    self._inline_mode = False
                    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                self._inline_runs = 0
                result = fn(conn)
        except BaseException as e:  # (whatever it is, the caller gets it)
            self._job_done()
            done.set_exception(e)
            return
        self._job_done()
        done.set_result(result)  # (the connection is free: the caller may commit inline)
        self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        if self.journal != "wal" or self.wal_frames_to_copy() < CHECKPOINT_FRAMES:
            return
        with self._using:
            conn = self._conn
            if conn is None:  # closed meanwhile
                return
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as e:  # the commits are in the WAL all the same; retried later
                log.warning("checkpointing %s failed: %s", self.path, e)

    def wal_frames_to_copy(self) -> int:
        """Pages in the WAL not yet copied into the database, as the WAL index (the ``-shm``
        file, in SQLite's documented layout) has them; 0 if there is no WAL index."""
        try:
            with open(self.path + "-shm", "rb") as index:
                header = index.read(_CKPT_INFO_OFFSET + 4)
        except OSError:  # no WAL (yet), or an in-memory database
            return 0
        if len(header) < _CKPT_INFO_OFFSET + 4:
            return 0
        max_frame: int = struct.unpack_from("=I", header, _MAX_FRAME_OFFSET)[0]
        backfilled: int = struct.unpack_from("=I", header, _CKPT_INFO_OFFSET)[0]
        return max(0, max_frame - backfilled)

    def describe(self) -> str:
        return self.path

    @property
    def session(self) -> int:
        return 1  # one connection for the life of the worker

    def run_sync(self, fn: Callable[[StoreConnection], T]) -> T:
        """Run ``fn`` on the worker thread and wait for it (for code off the event loop)."""
        if self._closed:
            raise StoreClosedError(f"store {self.path} is closed")
        return self._submit(fn).result()

    async def run(self, fn: Callable[[StoreConnection], T]) -> T:
        """Run ``fn`` on the worker thread without blocking the event loop."""
        if self._closed:
            raise StoreClosedError(f"store {self.path} is closed")
        return await asyncio.wrap_future(self._submit(fn))

    def run_inline(self, fn: Callable[[StoreConnection], T]) -> T:
        """Run the write ``fn`` here and now if the worker is idle (module docstring); raise
        ``NotInline``, having run nothing, otherwise. ``fn`` must start with
        ``BEGIN IMMEDIATE``: a write lock that another process holds is not waited for."""
        if self.journal != "wal" or self._inline_runs >= INLINE_RUNS:
            raise NotInline("the worker commits this one")
        if self._jobs or not self._using.acquire(blocking=False):
            raise NotInline("the worker is busy, or has jobs queued that go first")
        try:
            conn = self._conn
            if conn is None or self._closed:
                raise NotInline("the store is not open on the worker")
            if not self._inline_mode:
                conn.execute("PRAGMA busy_timeout=0")
                self._inline_mode = True
            try:
                result = fn(conn)
            except sqlite3.OperationalError as e:
                # only BEGIN IMMEDIATE can be busy in WAL mode (nothing else waits for a lock)
                if e.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                    raise NotInline("another connection holds the write lock") from e
                raise
            self._inline_runs += 1
            return result
        finally:
            self._using.release()

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
            with self._using:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()

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
