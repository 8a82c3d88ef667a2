"""The change log: every committed Yjs update of every document, in order, in SQLite.

* ``append`` queues an update and answers with its version once it is on disk. Appends that
  arrive while a write is in flight are written together in one SQLite transaction (group
  commit), so a flood of small changes costs one disk write per batch, not per change. A small
  batch is written on the event loop's thread when the store's worker is idle (SQLite in WAL
  mode, ``SQLiteWorker.run_inline``): the same commit, without two thread hops per keystroke.
  Whoever just appended a peer's change may have it written at once (``write_now``): the same
  commit of the same batch, a loop turn earlier.
* Each document's appends are a savepoint of their own inside that transaction: a document
  whose write fails (disk full, read-only store) fails alone. Its updates stay queued, in order,
  and are retried with a growing delay until the store takes them, so the log never has a gap;
  until then the document's watchers are told it is failing, and its futures stay pending (no
  room sends what is not on disk).
* Versions are per document: 1, 2, 3, … in commit order; each has a time and an author.
  Squashing (``history.py``) may later merge consecutive versions into the last of them, so
  the numbers of an old history can have gaps.
* Every ``snapshot_interval`` versions a snapshot (the merged state so far, garbage-collected)
  is stored, so opening a document replays one snapshot plus a short tail. Snapshots are built
  after the write, in the replay process: they never delay anyone's durability.

Why not ``pycrdt.store.SQLiteYStore``: it orders updates by wall-clock time (which can go
backwards), writes one transaction per update, keeps one metadata value per store rather than
an author per version, and its squashing replaces history instead of indexing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreUnavailableError, VersionNotFoundError
from ..errors_seen import count_error
from .bases import DDL as BASES_DDL
from .bases import Base, BaseInput, write_base
from .log_rows import (
    delete_history,
    has_version,
    read_base_input,
    read_save,
    read_state,
    read_versions,
    store_snapshot,
    write_save,
)
from .protocol import (
    DATABASE_ERRORS,
    STORE_ERRORS,
    NotInline,
    StoreConnection,
    StoreWorker,
    transaction,
)
from .replay import ReplayPool, merged_state

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS changes (
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    time REAL NOT NULL,
    author TEXT,
    data BLOB NOT NULL,
    PRIMARY KEY (doc, version)
);
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
);
"""

#: a batch of at most this many bytes may be written on the event loop's thread, when the
#: store can (``StoreWorker.run_inline``: SQLite in WAL mode, its worker idle)
INLINE_BYTES = 64 * 1024

#: seconds between retries of a document whose write failed (the last one repeats)
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)

#: ``listener(error)``: the document's writes fail with ``error``, or work again (``None``)
WriteStatusListener = Callable[[BaseException | None], None]


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


#: a batch written: ``(appends written, with their versions; per document that failed, the
#: error and its appends)``
_Outcome = tuple[list[tuple[_Append, int]], dict[str, tuple[BaseException, list[_Append]]]]


@dataclass
class _Failing:
    """A document whose writes fail: its queued appends and the task retrying them."""

    error: BaseException
    items: list[_Append] = field(default_factory=list)
    retry: asyncio.Task[None] | None = None


class ChangeLog:
    """Append-only, versioned log of document updates (see the module docstring)."""

    def __init__(
        self,
        worker: StoreWorker,
        *,
        snapshot_interval: int = 1000,
        replay: ReplayPool | None = None,
    ) -> None:
        if snapshot_interval < 1:
            raise ValueError("snapshot_interval must be at least 1")
        self.worker = worker
        self.snapshot_interval = snapshot_interval
        #: where replays run (shared by the process's change logs; whoever passes one closes it)
        self.replay = replay or ReplayPool.shared()
        #: batches up to this size are written inline when the store can (0: never)
        self.inline_bytes = INLINE_BYTES
        self._queue: list[_Append] = []
        #: a flush of the queue is due on the next loop turn (``_flush_soon``)
        self._flush_scheduled = False
        #: a flush that wrote a batch on the worker: it writes what queued meanwhile too
        self._flushing: asyncio.Task[None] | None = None
        #: a batch is being written on the worker (a later one may not be written inline)
        self._in_flight = False
        self._failing: dict[str, _Failing] = {}
        self._watchers: dict[str, list[WriteStatusListener]] = {}
        self._snapshotting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # worker-thread state: last version and last snapshot version per document
        self._last: dict[str, int] = {}
        self._last_snapshot: dict[str, int] = {}
        #: the worker's connection these were read on (another server may write between two)
        self._session = 0

    async def open(self) -> None:
        await self.worker.ensure_schema(DDL + BASES_DDL)

    def open_blocking(self) -> None:
        """Create the tables from code that has no event loop (server start-up)."""
        self.worker.ensure_schema_blocking(DDL + BASES_DDL)

    # -- writing ----------------------------------------------------------------------------

    def append(self, doc: str, data: bytes, author: str | None = None) -> asyncio.Future[int]:
        """Queue ``data`` for ``doc``; the future resolves to its version once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        item = _Append(doc, data, author, time.time(), future)
        failing = self._failing.get(doc)
        if failing is not None:
            failing.items.append(item)  # behind the ones that failed: the log keeps its order
            return future
        self._queue.append(item)
        if not self._flush_scheduled and not self._worker_flushing():
            # a callback, not a task: most batches are written inline (often by ``write_now``
            # before it runs), and a task per append was a good part of a keystroke's cost
            self._flush_scheduled = True
            loop.call_soon(self._flush_soon)
        return future

    def failure(self, doc: str) -> BaseException | None:
        """Why ``doc``'s writes fail, or ``None`` when they work."""
        failing = self._failing.get(doc)
        return failing.error if failing is not None else None

    def check_writable(self, doc: str) -> None:
        """Raise ``StoreUnavailableError`` while ``doc``'s writes fail."""
        error = self.failure(doc)
        if error is not None:
            raise StoreUnavailableError(
                f"changes cannot be saved right now ({error}); nothing saved is lost, "
                "and editing resumes by itself once the store is writable again"
            )

    def watch(self, doc: str, listener: WriteStatusListener) -> Callable[[], None]:
        """Call ``listener`` when ``doc``'s writes start failing and when they work again."""
        self._watchers.setdefault(doc, []).append(listener)

        def unwatch() -> None:
            listeners = self._watchers.get(doc, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._watchers.pop(doc, None)

        return unwatch

    async def flushed(self) -> None:
        """Wait until every append queued so far is on disk (or failing and queued)."""
        if self._flush_scheduled:
            self._flush_soon()  # (now rather than on the next turn: it is waited for)
        while self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)

    async def settled(self) -> None:
        """Wait until every append is on disk and every snapshot due is built."""
        await self.flushed()
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def write_now(self) -> bool:
        """Write the appends queued so far, and resolve their futures, before returning, if
        they can be written inline and no earlier batch is being written; whether it did (if
        not, the flush already scheduled writes them)."""
        if not self._queue or self._in_flight:
            return False
        outcome = self._write_inline(self._queue)  # (synchronous: nothing is queued meanwhile)
        if outcome is None:
            return False
        self._queue = []
        self._settle_batch(outcome)
        return True

    def _worker_flushing(self) -> bool:
        return self._flushing is not None and not self._flushing.done()

    def _flush_soon(self) -> None:
        """Write the queue inline if the store can, else start a flush that writes it on the
        worker (a flush under way there takes the queue when its batch is done)."""
        self._flush_scheduled = False
        if not self._queue or self._worker_flushing() or self.write_now():
            return
        self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            outcome = self._write_inline(batch)
            if outcome is None:
                self._in_flight = True
                try:
                    outcome = await self._write_batch(batch)
                finally:
                    self._in_flight = False
            self._settle_batch(outcome)

    def _settle_batch(self, outcome: _Outcome) -> None:
        written, failed = outcome
        self._resolve(written)
        for doc, (error, items) in failed.items():
            self._fail(doc, error, items)

    def _write_inline(self, batch: list[_Append]) -> _Outcome | None:
        """Write a small batch here, now, when the store can (``StoreWorker.run_inline``):
        two thread hops fewer on the path of every keystroke. ``None``: it could not."""
        if sum(len(item.data) for item in batch) > self.inline_bytes:
            return None  # (a big write would hold the event loop)
        try:
            return self.worker.run_inline(lambda conn: self._write(conn, batch))
        except NotInline:
            return None
        except Exception as exc:  # as on the worker: failed appends are retried, not lost
            return self._failed_batch(batch, exc)

    async def _write_batch(self, batch: list[_Append]) -> _Outcome:
        try:
            return await self.worker.run(lambda conn: self._write(conn, batch))
        except Exception as exc:  # store errors and bugs alike fail the batch (see there)
            return self._failed_batch(batch, exc)

    @staticmethod
    def _failed_batch(batch: list[_Append], exc: Exception) -> _Outcome:
        """The outcome of a batch whose transaction itself failed: every append failed."""
        if not isinstance(exc, STORE_ERRORS):  # a bug of ours: the appends fail, not hang
            count_error("changelog.write", exc, "writing the change log", logger=log)
        failed: dict[str, tuple[BaseException, list[_Append]]] = {}
        for item in batch:
            failed.setdefault(item.doc, (exc, []))[1].append(item)
        return [], failed

    def _resolve(self, written: list[tuple[_Append, int]]) -> None:
        due: set[str] = set()
        for item, version in written:
            if not item.future.done():
                item.future.set_result(version)
            if version - self._last_snapshot.get(item.doc, 0) >= self.snapshot_interval:
                due.add(item.doc)
        for doc in due:
            self._snapshot_soon(doc)

    def _last_version(self, conn: StoreConnection, doc: str) -> int:
        if self._session != self.worker.session:
            self._session = self.worker.session
            self._last.clear()
            self._last_snapshot.clear()
        last = self._last.get(doc)
        if last is None:
            row = conn.execute("SELECT MAX(version) FROM changes WHERE doc = ?", (doc,)).fetchone()
            last = self._last[doc] = row[0] or 0
            row = conn.execute(
                "SELECT MAX(version) FROM snapshots WHERE doc = ?", (doc,)
            ).fetchone()
            self._last_snapshot[doc] = row[0] or 0
        return last

    def _write(self, conn: StoreConnection, batch: list[_Append]) -> _Outcome:
        """One transaction, one savepoint per document (on the worker thread, or inline)."""
        by_doc: dict[str, list[_Append]] = {}
        for item in batch:
            by_doc.setdefault(item.doc, []).append(item)
        written: list[tuple[_Append, int]] = []
        failed: dict[str, tuple[BaseException, list[_Append]]] = {}
        last: dict[str, int] = {}
        # a savepoint per document lets one document fail alone; a batch of one document (a
        # keystroke's, a run's output) needs none: its failure is the transaction's
        savepoints = len(by_doc) > 1
        with transaction(conn):
            for doc, items in by_doc.items():
                if savepoints:
                    conn.execute("SAVEPOINT doc")
                try:
                    version = self._last_version(conn, doc)
                    for item in items:
                        version += 1
                        conn.execute(
                            "INSERT INTO changes (doc, version, time, author, data) "
                            "VALUES (?,?,?,?,?)",
                            (doc, version, item.time, item.author, item.data),
                        )
                        written.append((item, version))
                    last[doc] = version
                    if savepoints:
                        conn.execute("RELEASE doc")
                except DATABASE_ERRORS as exc:
                    if not savepoints:
                        raise  # (the transaction is rolled back: the batch failed)
                    conn.execute("ROLLBACK TO doc")
                    conn.execute("RELEASE doc")
                    written = [(i, v) for i, v in written if i.doc != doc]
                    failed[doc] = (exc, items)
        self._last.update(last)
        return written, failed

    # -- failing documents ------------------------------------------------------------------

    def _fail(self, doc: str, error: BaseException, items: list[_Append]) -> None:
        failing = self._failing.get(doc)
        if failing is None:
            log.error("writing the change log of %s failed: %s (retrying)", doc, error)
            failing = self._failing[doc] = _Failing(error)
            self._notify(doc, error)
        failing.error = error
        # appends of this document queued behind the failed ones keep their place after them
        later = [item for item in self._queue if item.doc == doc]
        self._queue = [item for item in self._queue if item.doc != doc]
        failing.items[:0] = items
        failing.items.extend(later)
        if failing.retry is None or failing.retry.done():
            failing.retry = asyncio.get_running_loop().create_task(self._retry(doc))

    async def _retry(self, doc: str) -> None:
        attempt = 0
        while (failing := self._failing.get(doc)) is not None and failing.items:
            await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            attempt += 1
            while failing.items:  # appends that arrive meanwhile queue up behind these
                items, failing.items = failing.items, []
                written, failed = await self._write_batch(items)
                self._resolve(written)
                if doc in failed:
                    failing.error = failed[doc][0]
                    failing.items[:0] = failed[doc][1]
                    break
            else:
                break
        if self._failing.pop(doc, None) is not None:
            log.info("the change log of %s is written again", doc)
            self._notify(doc, None)

    def _notify(self, doc: str, error: BaseException | None) -> None:
        for listener in list(self._watchers.get(doc, [])):
            try:
                listener(error)
            except Exception as e:  # (the other watchers are still told)
                count_error("changelog.watcher", e, "a change log watcher", logger=log)

    # -- snapshots --------------------------------------------------------------------------

    def _snapshot_soon(self, doc: str) -> None:
        if doc in self._snapshotting:
            return
        self._snapshotting.add(doc)
        task = asyncio.get_running_loop().create_task(self._snapshot(doc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _snapshot(self, doc: str) -> None:
        try:
            version = await self.worker.run(lambda conn: self._last_version(conn, doc))
            base, snapshot, updates, start = await self.worker.run(
                lambda conn: (*read_state(conn, doc, version), read_base_input(conn, doc))
            )
            state = (
                snapshot
                if not updates
                else await self.replay.run(merged_state, snapshot, updates, start)
            )

            def write(conn: StoreConnection) -> None:
                assert state is not None
                store_snapshot(conn, doc, version, state)
                self._last_snapshot[doc] = max(self._last_snapshot.get(doc, 0), version)

            if state is not None and version > base:
                await self.worker.run(write)
        except STORE_ERRORS as e:  # (a later write tries again; loads replay a little more)
            log.warning("building a snapshot of %s failed: %s", doc, e)
            return
        except Exception as e:  # a bug of ours: snapshots only make loading faster
            count_error("changelog.snapshot", e, f"building a snapshot of {doc}", logger=log)
            return
        finally:
            self._snapshotting.discard(doc)
        if self._last.get(doc, 0) - self._last_snapshot.get(doc, 0) >= self.snapshot_interval:
            self._snapshot_soon(doc)  # writes went on while this one was built

    # -- reading ----------------------------------------------------------------------------

    async def set_base(self, doc: str, base: Base) -> None:
        """Record that ``doc``'s history starts from ``base`` (durable when this returns)."""
        await self.worker.run(lambda conn: write_base(conn, doc, base))

    async def _state(
        self, snapshot: bytes | None, updates: list[bytes], base: BaseInput | None
    ) -> bytes | None:
        if not updates:
            return snapshot
        if snapshot is None and len(updates) == 1:
            return updates[0]
        return await self.replay.run(merged_state, snapshot, updates, base)

    async def load(self, doc: str) -> tuple[bytes | None, int]:
        """The document's current state as one update (``None`` if it has no history; for a
        based document, relative to its base)."""
        await self.flushed()

        def read(
            conn: StoreConnection,
        ) -> tuple[int, tuple[int, bytes | None, list[bytes]], BaseInput | None]:
            last = self._last_version(conn, doc)
            return last, read_state(conn, doc, last), read_base_input(conn, doc)

        last, (_, snapshot, updates), base = await self.worker.run(read)
        if last == 0:
            return None, 0
        return await self._state(snapshot, updates, base), last

    async def state_at(self, doc: str, version: int) -> bytes:
        """The document as of ``version`` (a retained one), as one update."""
        await self.flushed()

        def read(
            conn: StoreConnection,
        ) -> tuple[tuple[int, bytes | None, list[bytes]], BaseInput | None]:
            if not has_version(conn, doc, version):
                raise VersionNotFoundError(f"{doc} has no version {version}")
            return read_state(conn, doc, version), read_base_input(conn, doc)

        (_, snapshot, updates), base = await self.worker.run(read)
        state = await self._state(snapshot, updates, base)
        assert state is not None
        return state

    async def versions(self, doc: str) -> list[Version]:
        """Every retained version of ``doc``, oldest first."""
        await self.flushed()
        rows = await self.worker.run(lambda conn: read_versions(conn, doc))
        return [Version(*row) for row in rows]

    async def last_version(self, doc: str) -> int:
        await self.flushed()
        return await self.worker.run(lambda conn: self._last_version(conn, doc))

    async def mark_saved(
        self, doc: str, version: int, last_modified: str | None, size: int | None
    ) -> None:
        """Remember which version is in the file, and the file's stamp after saving it."""
        try:
            await self.worker.run(lambda conn: write_save(conn, doc, version, last_modified, size))
        except STORE_ERRORS as e:  # the file is saved; the next save records it again
            raise StoreUnavailableError(
                f"the save of {doc} cannot be recorded right now ({e}); nothing saved is lost"
            ) from e

    async def last_saved(self, doc: str) -> tuple[int, str | None, int | None] | None:
        """``(version, last_modified, size)`` of the last save of ``doc``, if any."""
        return await self.worker.run(lambda conn: read_save(conn, doc))

    async def forget(self, doc: str) -> None:
        """Delete a document's whole history (used when its file is deleted for good)."""
        await self.flushed()

        def delete(conn: StoreConnection) -> None:
            delete_history(conn, doc)
            self._last.pop(doc, None)
            self._last_snapshot.pop(doc, None)

        await self.worker.run(delete)

    def close(self) -> None:
        for failing in self._failing.values():
            if failing.retry is not None:
                failing.retry.cancel()
            for item in failing.items:
                if not item.future.done():
                    item.future.set_exception(StoreUnavailableError(str(failing.error)))
        self._failing.clear()
        for task in self._tasks:
            task.cancel()
