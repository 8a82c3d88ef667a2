"""Small change-log writes commit on the event loop's thread while the SQLite worker is idle,
and fall back to the worker whenever that could make the loop wait."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from jupyter_cocalc_sync.store import ChangeLog, SQLiteWorker
from jupyter_cocalc_sync.store import sqlite as sqlite_module
from jupyter_cocalc_sync.store.protocol import NotInline, StoreConnection


@pytest.fixture
def changelog(tmp_path):
    """A change log on SQLite whose tables exist (made on the worker thread)."""
    worker = SQLiteWorker(tmp_path / "store.db")
    log = ChangeLog(worker)
    log.open_blocking()
    yield log
    log.close()
    worker.close()


def threads_of_writes(log: ChangeLog, monkeypatch) -> list[int]:
    """The thread of every change-log transaction from now on."""
    threads: list[int] = []
    write = log._write

    def recording(conn, batch):
        threads.append(threading.get_ident())
        return write(conn, batch)

    monkeypatch.setattr(log, "_write", recording)
    return threads


def committed(store: Path, doc: str) -> list[bytes]:
    """What another connection reads: only committed rows."""
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute("SELECT data FROM changes WHERE doc = ? ORDER BY version", (doc,))
        return [row[0] for row in rows]
    finally:
        conn.close()


async def test_a_small_write_commits_on_the_loop_thread_before_its_future_resolves(
    changelog, tmp_path, monkeypatch
):
    threads = threads_of_writes(changelog, monkeypatch)
    first = changelog.append("nb", b"a")
    second = changelog.append("nb", b"b")  # (appended together: one transaction)
    seen_on_resolve: list[list[bytes]] = []
    second.add_done_callback(
        lambda _: seen_on_resolve.append(committed(tmp_path / "store.db", "nb"))
    )
    assert await asyncio.gather(first, second) == [1, 2]
    assert threads == [threading.get_ident()]
    assert seen_on_resolve == [[b"a", b"b"]]


async def test_a_big_write_goes_to_the_worker_thread(changelog, monkeypatch):
    threads = threads_of_writes(changelog, monkeypatch)
    await changelog.append("nb", b"x" * (changelog.inline_bytes + 1))
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


async def test_while_the_worker_is_busy_writes_wait_for_it_in_order(changelog, monkeypatch):
    threads = threads_of_writes(changelog, monkeypatch)
    release = threading.Event()
    busy = asyncio.ensure_future(changelog.worker.run(lambda conn: release.wait(30)))
    await asyncio.sleep(0.05)  # (let the job start: the worker holds its connection)
    first = changelog.append("nb", b"a")
    await asyncio.sleep(0.05)
    assert not first.done()  # neither written inline nor lost: queued for the worker
    second = changelog.append("nb", b"b")
    release.set()
    await busy
    assert await asyncio.gather(first, second) == [1, 2]
    assert threading.get_ident() not in threads[:1]


async def test_a_write_lock_held_elsewhere_is_not_waited_for_on_the_loop(changelog, tmp_path):
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    await changelog.append("nb", b"a")  # (the worker's connection is open, in inline mode)
    other.execute("BEGIN IMMEDIATE")
    try:
        future = changelog.append("nb", b"b")
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(10):  # the loop runs on while the worker waits for the lock
            await asyncio.sleep(0.01)
        # (waiting inline would have held the loop for the whole busy timeout, 10 s)
        assert loop.time() - start < sqlite_module.BUSY_TIMEOUT_MS / 2000
        assert not future.done()
    finally:
        other.execute("COMMIT")
        other.close()
    assert await future == 2


async def test_the_wal_is_checkpointed_through_a_long_run_of_inline_writes(
    changelog, tmp_path, monkeypatch
):
    monkeypatch.setattr(sqlite_module, "INLINE_RUNS", 20)
    threads = threads_of_writes(changelog, monkeypatch)
    chunk = b"y" * 16_000
    for _ in range(400):  # 6.4 MB; one at a time, as a user types
        await changelog.append("nb", chunk)
    loop_thread = threading.get_ident()
    on_worker = sum(thread != loop_thread for thread in threads)
    # every 21st, and any that came while the worker was checkpointing (6.4 MB of WAL pages:
    # one checkpoint per ``CHECKPOINT_FRAMES`` pages, after the write that made it due)
    assert 400 // 21 <= on_worker <= 400 // 21 + 2
    # checkpointed: the WAL is reused instead of holding every write since the first (its
    # size past ``CHECKPOINT_FRAMES`` pages depends on how many writes came while the worker
    # checkpointed, which a loaded machine stretches; without checkpoints it holds all 400)
    wal = tmp_path / "store.db-wal"
    assert wal.stat().st_size < 400 * len(chunk)


async def test_a_rollback_journal_store_never_runs_inline(tmp_path):
    worker = SQLiteWorker(tmp_path / "store.db", journal="rollback")
    try:
        await worker.run(lambda conn: None)
        with pytest.raises(NotInline):
            worker.run_inline(lambda conn: None)
    finally:
        worker.close()


async def test_a_write_never_overtakes_a_job_queued_before_it(changelog, monkeypatch):
    threads = threads_of_writes(changelog, monkeypatch)
    worker = changelog.worker
    release = threading.Event()
    # the worker's thread is taken (not its connection): the next job waits in its queue
    taken = worker._executor.submit(release.wait, 30)
    order: list[str] = []
    queued = asyncio.ensure_future(worker.run(lambda conn: order.append("job")))
    await asyncio.sleep(0)  # (the job is handed to the worker)
    written = changelog.append("nb", b"a")
    written.add_done_callback(lambda _: order.append("write"))
    await asyncio.sleep(0.05)
    assert order == []
    release.set()
    await asyncio.gather(queued, written, asyncio.wrap_future(taken))
    await asyncio.sleep(0)  # (the done callback)
    assert order == ["job", "write"]
    assert threads[0] != threading.get_ident()


async def test_a_big_write_is_handed_back_before_the_wal_is_checkpointed(tmp_path, monkeypatch):
    worker = SQLiteWorker(tmp_path / "store.db")
    try:
        await worker.run(lambda conn: conn.execute("CREATE TABLE t (x BLOB)"))
        looked = threading.Event()
        checkpoint = worker._checkpoint_if_due

        def checkpoint_once_looked() -> None:
            looked.wait(10)
            checkpoint()

        monkeypatch.setattr(worker, "_checkpoint_if_due", checkpoint_once_looked, raising=False)
        big = b"z" * (sqlite_module.CHECKPOINT_FRAMES * 4096 * 2)  # two checkpoints' worth

        def write(conn: StoreConnection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (big,))
            conn.execute("COMMIT")

        await worker.run(write)
        # handed back committed, with the whole write in the WAL and none of it copied yet:
        # the writer does not wait for the checkpoint (SQLite's automatic one runs in COMMIT)
        assert committed_rows(tmp_path / "store.db") == 1
        assert worker.wal_frames_to_copy() >= 2 * sqlite_module.CHECKPOINT_FRAMES
        looked.set()
        # and the WAL is checkpointed all the same, before the next job runs
        assert await worker.run(lambda conn: worker.wal_frames_to_copy()) == 0
    finally:
        looked.set()
        worker.close()


def committed_rows(store: Path) -> int:
    conn = sqlite3.connect(store)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    finally:
        conn.close()


async def test_write_now_commits_what_is_queued_before_it_returns(changelog, tmp_path):
    await changelog.append("nb", b"a")  # (the worker's connection is open)
    first, second = changelog.append("nb", b"b"), changelog.append("nb", b"c")
    assert changelog.write_now()
    # no loop turn: the futures resolved in the call, after the commit
    assert first.done() and second.done()
    assert (first.result(), second.result()) == (2, 3)
    assert committed(tmp_path / "store.db", "nb") == [b"a", b"b", b"c"]
    assert not changelog.write_now()  # nothing queued
    await changelog.flushed()  # (the flush scheduled by the appends finds nothing left)
    assert committed(tmp_path / "store.db", "nb") == [b"a", b"b", b"c"]


async def test_write_now_never_overtakes_a_batch_written_on_the_worker(changelog, monkeypatch):
    await changelog.append("nb", b"a")
    release = asyncio.Event()
    write_batch = changelog._write_batch

    async def held(batch):  # a batch in flight on the worker, not yet handed back
        await release.wait()
        return await write_batch(batch)

    monkeypatch.setattr(changelog, "_write_batch", held)
    big = changelog.append("nb", b"x" * (changelog.inline_bytes + 1))
    await asyncio.sleep(0)  # (the flush takes the big batch)
    small = changelog.append("nb", b"y")
    assert not changelog.write_now()  # it would be version 2, the big one's
    release.set()
    assert await asyncio.gather(big, small) == [2, 3]


async def test_an_append_starts_no_task(changelog):
    await changelog.append("nb", b"a")  # (the worker's connection is open)
    tasks = asyncio.all_tasks()
    written = changelog.append("nb", b"b")
    assert asyncio.all_tasks() == tasks  # (its flush is a callback: most are written inline)
    assert await written == 2


async def test_a_batch_of_one_document_is_written_without_a_savepoint(changelog, tmp_path):
    await changelog.append("nb", b"a")  # (the worker's connection is open)
    statements: list[str] = []
    changelog.worker._conn.set_trace_callback(statements.append)
    first, second = changelog.append("nb", b"b"), changelog.append("nb", b"c")
    assert changelog.write_now()
    assert (first.result(), second.result()) == (2, 3)
    assert [s.split()[0] for s in statements] == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    assert committed(tmp_path / "store.db", "nb") == [b"a", b"b", b"c"]
