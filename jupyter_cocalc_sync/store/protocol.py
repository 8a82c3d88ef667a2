"""What the rest of the package knows of the store: a worker that runs SQL on one connection.

Two backends implement it: ``SQLiteWorker`` (the embedded default, one file) and
``PostgresWorker`` (``c.CocalcSync.store_url``). Every component (the change log, history,
projections, blobs, overflow, the stateless cache) writes its SQL once, as callables
``fn(connection)`` run on the worker's own thread, in the subset both databases speak:
``?`` placeholders, ``INSERT … ON CONFLICT … DO UPDATE/NOTHING``, savepoints. Only the table
definitions differ: SQLite's are each component's ``DDL``; PostgreSQL's are its ordered
migrations (``pg_schema.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

from ..errors import StoreClosedError

T = TypeVar("T")

Dialect = Literal["sqlite", "postgresql"]


class NotInline(Exception):
    """``run_inline`` cannot run now (the worker is busy, the backend never runs inline):
    nothing ran, the caller runs it on the worker instead."""


def _database_errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:  # the ``postgres`` extra is not installed: SQLite only
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


#: errors of the databases themselves (a constraint, a full disk, a lost connection)
DATABASE_ERRORS: tuple[type[Exception], ...] = _database_errors()

#: what a store operation raises when the store itself fails (not a bug of the caller): the
#: database's errors (a full or read-only disk, a locked database, a database restarted or
#: unreachable), the file system's, or a store closed under it
STORE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError, StoreClosedError)


class StoreCursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class StoreConnection(Protocol):
    """The part of a DB-API connection the components use (``sqlite3.Connection`` is one)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> StoreCursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> StoreCursor: ...


class StoreWorker(Protocol):
    """Runs ``fn(connection)`` on the store's one connection, on a thread of its own."""

    dialect: Dialect

    def describe(self) -> str:
        """Where the store is, for log lines (never a password)."""
        ...

    @property
    def session(self) -> int:
        """Counts the connections made so far: when it changes, state cached from the old
        connection (another server may have written meanwhile) must be read again."""
        ...

    def run_sync(self, fn: Callable[[StoreConnection], T]) -> T: ...

    async def run(self, fn: Callable[[StoreConnection], T]) -> T: ...

    def run_inline(self, fn: Callable[[StoreConnection], T]) -> T:
        """Run ``fn`` on the calling thread now, if the store can do it without waiting
        (idle, and cheap to commit); raise ``NotInline`` otherwise, having run nothing.
        ``fn``'s first statement must be ``BEGIN IMMEDIATE`` (the write lock, not waited
        for)."""
        ...

    async def ensure_schema(self, ddl: str) -> None:
        """Make sure a component's tables exist (SQLite: ``ddl``; PostgreSQL: its
        migrations, run when it connects, already made them)."""
        ...

    def ensure_schema_blocking(self, ddl: str) -> None: ...

    def close(self) -> None: ...


def transaction(conn: StoreConnection) -> Transaction:
    """``with transaction(conn):`` — ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error)
    on an autocommit connection (PostgreSQL's reads ``BEGIN IMMEDIATE`` as ``BEGIN``)."""
    return Transaction(conn)


class Transaction:
    def __init__(self, conn: StoreConnection) -> None:
        self.conn = conn

    def __enter__(self) -> StoreConnection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
