"""The store in PostgreSQL (``c.CocalcSync.store_url``): one connection on one worker thread.

Like ``SQLiteWorker``, every statement runs on one thread of the worker's, so the event loop
never waits for the database and the components' SQL (written once for both backends, see
``protocol.py``) runs unchanged; psycopg's own connection is the synchronous one for that
reason. The change log's group commit makes one transaction per batch, and a transaction is
acknowledged only once PostgreSQL has committed it (``synchronous_commit`` as the server
has it; on by default: flushed to its WAL).

* **One writer per store.** Versions are numbered by the server that writes them, so the
  worker holds a session-level advisory lock on its schema for as long as its connection
  lives; a second server on the same schema waits ``lock_wait`` seconds for it, then refuses
  to start. The lock dies with the connection: when a pod dies, PostgreSQL drops its session
  (TCP keepalives are set short on both sides, so a vanished node is noticed within about half
  a minute) and the next server takes the store over.
* **A database that goes away.** A statement that fails because the connection broke drops
  the connection; the next one connects again, takes the lock again and bumps ``session``,
  so the change log reads its versions afresh. Meanwhile the change log keeps the failing
  documents' changes queued and their clients told (``changelog.py``); when the database is
  back, everything queued is written. Should another server have taken the store over in
  between, the writes fail with ``StoreTakenOverError`` until it leaves.
* **Schema**: ordered migrations, applied at the first connection (``pg_schema.py``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import StoreClosedError, StoreInUseError
from .pg_schema import migrate
from .protocol import Dialect, NotInline, StoreConnection, StoreCursor

T = TypeVar("T")

#: the advisory lock space of this package ("JCSS"); the key within it is the schema's hash
LOCK_CLASS = 0x4A435353

#: seconds before a dead peer is dropped: idle, then probes every interval, this many times
KEEPALIVE = {"idle": 10, "interval": 5, "count": 3}


class StoreTakenOverError(StoreClosedError):
    """Another server took the store while this one's connection was lost."""


@functools.lru_cache(maxsize=512)
def to_postgres(sql: str) -> str:
    """The components' SQL as psycopg takes it: ``%s`` placeholders, a plain ``BEGIN``
    (``BEGIN IMMEDIATE`` is SQLite's way to take its write lock at once)."""
    if sql == "BEGIN IMMEDIATE":
        return "BEGIN"
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection:
    """A psycopg connection that speaks like ``sqlite3.Connection`` to the components."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> StoreCursor:
        cursor = self.conn.cursor()
        cursor.execute(to_postgres(sql), parameters)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> StoreCursor:
        cursor = self.conn.cursor()
        cursor.executemany(to_postgres(sql), parameters)
        return cursor


def safe_url(url: str) -> str:
    """``url`` without its password, for log lines and messages."""
    params = conninfo_to_dict(url)
    user = params.get("user", "")
    host = str(params.get("host", ""))
    port = params.get("port", "")
    userinfo = f"{user}@" if user else ""
    if host.startswith("/"):  # a unix socket's folder
        return f"postgresql://{userinfo}/{params.get('dbname', '')}?host={host}"
    where = f"{host}:{port}" if port else host
    return f"postgresql://{userinfo}{where}/{params.get('dbname', '')}"


class PostgresWorker:
    """Runs callables ``fn(connection)`` on one PostgreSQL connection, on one thread."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, lock_wait: float = 30.0, connect_timeout: int = 10) -> None:
        self.url = url
        self.lock_wait = lock_wait
        self.connect_timeout = connect_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cocalc-postgres")
        self._conn: PostgresConnection | None = None
        self._session = 0
        self._schema = "?"
        self._closed = False

    def describe(self) -> str:
        return f"{safe_url(self.url)} (schema {self._schema})"

    @property
    def session(self) -> int:
        return self._session

    def _connect(self) -> PostgresConnection:
        raw = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=self.connect_timeout,
            keepalives=1,
            keepalives_idle=KEEPALIVE["idle"],
            keepalives_interval=KEEPALIVE["interval"],
            keepalives_count=KEEPALIVE["count"],
            application_name="jupyter-cocalc-sync",
        )
        try:
            conn = PostgresConnection(raw)
            for name, value in KEEPALIVE.items():  # the server's side of this session too
                conn.execute(f"SET tcp_keepalives_{name} = {int(value)}")
            self._schema = str(conn.execute("SELECT current_schema()").fetchone()[0])
            self._take_lock(conn, wait=self.lock_wait if self._session == 0 else 0.0)
            migrate(conn)
        except BaseException:
            raw.close()
            raise
        self._session += 1
        return conn

    def _take_lock(self, conn: PostgresConnection, *, wait: float) -> None:
        """The one-writer lock on this schema, waiting up to ``wait`` seconds for it."""
        key = "?, hashtext(current_schema())"
        taken = conn.execute(f"SELECT pg_try_advisory_lock({key})", (LOCK_CLASS,)).fetchone()[0]
        if not taken and wait > 0:
            # a server that just died may still hold it until its session is dropped
            conn.execute("SELECT set_config('lock_timeout', ?, false)", (f"{int(wait * 1000)}",))
            try:
                conn.execute(f"SELECT pg_advisory_lock({key})", (LOCK_CLASS,))
                taken = True
            except psycopg.errors.LockNotAvailable:
                taken = False
            finally:
                conn.execute("SET lock_timeout = 0")
        if taken:
            return
        holder = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = ? "
            "AND objid = hashtext(current_schema())::oid AND granted",
            (LOCK_CLASS,),
        ).fetchone()
        pid = f"backend pid {holder[0]}" if holder else "another session"
        message = (
            f"the store {self.describe()} is in use by another server ({pid} on the database "
            "server); give this server a schema of its own (its own database role), or stop "
            "the other one"
        )
        if self._session == 0:
            raise StoreInUseError(message)
        raise StoreTakenOverError(message)

    def _connection(self) -> PostgresConnection:
        if self._conn is None or self._conn.conn.closed:
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def _call(self, fn: Callable[[StoreConnection], T]) -> T:
        conn = self._connection()
        try:
            return fn(conn)
        except psycopg.Error:
            if conn.conn.broken or conn.conn.closed:
                conn.conn.close()
                self._conn = None  # the next call connects again
            raise

    def run_sync(self, fn: Callable[[StoreConnection], T]) -> T:
        """Run ``fn`` on the worker thread and wait for it (for code off the event loop)."""
        if self._closed:
            raise StoreClosedError(f"store {self.describe()} is closed")
        return self._executor.submit(self._call, fn).result()

    async def run(self, fn: Callable[[StoreConnection], T]) -> T:
        """Run ``fn`` on the worker thread without blocking the event loop."""
        if self._closed:
            raise StoreClosedError(f"store {self.describe()} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def run_inline(self, fn: Callable[[StoreConnection], T]) -> T:
        """Never: a commit is a round trip to the database, always the worker's."""
        raise NotInline("PostgreSQL commits on the worker thread")

    def open_blocking(self) -> None:
        """Connect, take the store and migrate it (server start-up: fails fast)."""
        self.run_sync(lambda conn: None)

    async def ensure_schema(self, ddl: str) -> None:
        """The migrations made every table at the first connection (``ddl`` is SQLite's)."""
        await self.run(lambda conn: None)

    def ensure_schema_blocking(self, ddl: str) -> None:
        self.run_sync(lambda conn: None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def _close() -> None:
            if self._conn is not None:
                self._conn.conn.close()  # the advisory lock goes with the session
                self._conn = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)
