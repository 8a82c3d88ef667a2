"""The change log: durability across kill -9, history, snapshots."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from postgres import worker_for

from jupyter_cocalc_sync.errors import VersionNotFoundError
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import STORE, Origin
from jupyter_cocalc_sync.store import ChangeLog, LoggedTable, SQLiteWorker
from jupyter_cocalc_sync.store.log_rows import BLOB_PIECE

#: the origin of this test's own changes
ME = Origin.of_user("me")

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from jupyter_cocalc_sync.format.schema import notebook_syncdb
    from jupyter_cocalc_sync.origin import Origin
    from jupyter_cocalc_sync.store import ChangeLog, LoggedTable
    from postgres import worker_for

    async def main():
        log = ChangeLog(worker_for(sys.argv[1]), snapshot_interval=50)
        await log.open()
        db = notebook_syncdb()
        table = LoggedTable(db, log, "nb")
        await table.load()
        i = 0
        while True:
            child = Origin.of_user("child")
            db.set({"type": "cell", "id": f"c{i % 7}", "input": f"edit {i} 😀", "pos": i}, child)
            version = await table.commit(child)
            print(i, version, flush=True)
            i += 1

    asyncio.run(main())
    """
)


@pytest.fixture
def open_log(store_spec):
    """Opens the test's change log (on each backend in turn)."""

    async def open_(**kwargs) -> ChangeLog:
        log = ChangeLog(worker_for(store_spec), **kwargs)
        await log.open()
        return log

    return open_


async def test_every_returned_commit_survives_sigkill(store_spec, open_log):
    tests = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    acknowledged = []
    # (the context closes the pipe and waits for the child)
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, store_spec], stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        try:
            assert child.stdout is not None
            for line in child.stdout:
                acknowledged.append(tuple(map(int, line.split())))
                if len(acknowledged) == 300:
                    # killed right after a commit returned, while it keeps committing
                    os.kill(child.pid, signal.SIGKILL)
                    break
        finally:
            child.kill()
    assert len(acknowledged) == 300
    log = await open_log()
    db = notebook_syncdb()
    table = LoggedTable(db, log, "nb")
    assert await table.load()
    last_i, last_version = acknowledged[-1]
    assert table.version >= last_version
    versions = await log.versions("nb")
    assert [v.version for v in versions][: len(acknowledged)] == [v for _, v in acknowledged]
    # the table holds at least every acknowledged edit
    cells = {r["id"]: r for r in db.get({"type": "cell"})}
    for i in range(last_i - 6, last_i + 1):
        text = cells[f"c{i % 7}"]["input"]
        assert int(text.split()[1]) >= i
    await log.settled()
    log.close()
    log.worker.close()


async def test_history_lists_versions_and_reads_each_one(open_log):
    log = await open_log(snapshot_interval=4)
    db = notebook_syncdb()
    table = LoggedTable(db, log, "nb")
    seen = []
    for i in range(11):
        db.set({"type": "cell", "id": f"c{i % 3}", "input": "x" * i, "pos": i}, ME)
        if i == 5:
            db.delete({"type": "cell", "id": "c0"}, ME)
        await table.commit(Origin.of_user(f"user{i % 2}"))
        seen.append(sorted(db.get(), key=lambda r: r["id"]))
    versions = await log.versions("nb")
    assert [v.version for v in versions] == list(range(1, 12))
    assert [v.author for v in versions] == [f"user{i % 2}" for i in range(11)]
    assert all(a.time <= b.time for a, b in itertools.pairwise(versions))
    for k in range(1, 12):
        old = notebook_syncdb()
        old.apply_update(await log.state_at("nb", k), STORE)
        assert sorted(old.get(), key=lambda r: r["id"]) == seen[k - 1]
    with pytest.raises(VersionNotFoundError):
        await log.state_at("nb", 12)
    with pytest.raises(VersionNotFoundError):
        await log.state_at("nb", 0)
    await log.settled()
    log.close()
    log.worker.close()


async def test_reopening_a_long_history_reads_one_snapshot_and_a_short_tail(open_log, monkeypatch):
    log = await open_log(snapshot_interval=100)
    db = notebook_syncdb()
    table = LoggedTable(db, log, "nb")
    for i in range(1050):
        db.set({"type": "cell", "id": "c", "input": f"v{i}", "pos": 0}, ME)
        table.commit(ME)
        if i % 30 == 0:
            await table.durable()  # several flushes, as in real use
    await table.durable()
    expected = db.get()
    await log.settled()
    log.close()
    log.worker.close()

    log = await open_log(snapshot_interval=100)
    rows = await log.worker.run(
        lambda c: c.execute(
            "SELECT version FROM snapshots WHERE doc='nb' ORDER BY version"
        ).fetchall()
    )
    snapshots = [r[0] for r in rows]
    # one snapshot per flushed batch that crossed the interval; the last is near the end
    assert snapshots and 1050 - snapshots[-1] < 100
    replayed = []
    real_run = log.replay.run

    async def recording_run(fn, snapshot, updates, base):
        replayed.append((snapshot is not None, len(updates)))
        return await real_run(fn, snapshot, updates, base)

    monkeypatch.setattr(log.replay, "run", recording_run)
    reopened = notebook_syncdb()
    assert await LoggedTable(reopened, log, "nb").load()
    assert reopened.get() == expected
    assert replayed in ([(True, 1050 - snapshots[-1])], [])  # latest snapshot + short tail
    await log.settled()
    log.close()
    log.worker.close()


async def test_group_commit_orders_versions_per_document(open_log):
    log = await open_log()
    futures = [log.append(f"doc{i % 2}", b"\x00\x00", author=None) for i in range(20)]
    versions = await asyncio.gather(*futures)
    assert versions[0::2] == list(range(1, 11)) and versions[1::2] == list(range(1, 11))
    await log.settled()
    log.close()
    log.worker.close()


async def test_a_table_is_at_its_latest_write_as_soon_as_that_write_is_durable(open_log):
    """A reader that runs after a write's future resolved, before its done callbacks ran,
    reads the table's version: that write's (a revert read the log as of an older one and
    left the latest changes un-reverted)."""
    log = await open_log()
    db = notebook_syncdb()
    table = LoggedTable(db, log, "nb")
    for i in range(1, 6):
        db.set({"type": "cell", "id": "c", "input": f"v{i}", "pos": 0}, ME)
        written = table.commit(ME)
        assert written is not None
        while not written.done():  # (each turn of the loop: the first one that sees it)
            await asyncio.sleep(0)
        assert table.version == written.result() == i
        assert await table.durable() == i
    await log.settled()
    log.close()
    log.worker.close()


async def _edits(log: ChangeLog, authors: list[str | None]) -> tuple[LoggedTable, list[int]]:
    db = notebook_syncdb()
    table = LoggedTable(db, log, "nb")
    versions = []
    for i, author in enumerate(authors):
        db.set({"type": "cell", "id": "c", "input": f"v{i}", "pos": 0}, ME)
        versions.append(await table.commit(Origin.of_user(author)))
    return table, versions


async def _input_at(log: ChangeLog, version: int) -> str:
    db = notebook_syncdb()
    db.apply_update(await log.state_at("nb", version), STORE)
    return db.get_one({"type": "cell", "id": "c"})["input"]


async def test_squashing_a_run_keeps_other_authors_and_the_saved_version(open_log):
    from jupyter_cocalc_sync.store.history import HistorySquasher

    log = await open_log(snapshot_interval=3)
    authors = ["runner"] * 4 + ["alice"] + ["runner"] * 5
    _, versions = await _edits(log, authors)
    assert versions == list(range(1, 11))
    await log.mark_saved("nb", 8, None, None)
    await log.settled()
    runner_versions = [v for v, a in zip(versions, authors, strict=True) if a == "runner"]
    removed = await HistorySquasher(log).squash_versions("nb", runner_versions)
    # runs of consecutive runner versions end at alice's edit and at the saved version
    assert removed == 6
    kept = [v.version for v in await log.versions("nb")]
    assert kept == [4, 5, 8, 10]
    for version in kept:  # every retained version reads back as it was
        assert await _input_at(log, version) == f"v{version - 1}"
    with pytest.raises(VersionNotFoundError):
        await log.state_at("nb", 2)
    # reopening replays to the same state, and new versions continue the numbering
    reopened = notebook_syncdb()
    table = LoggedTable(reopened, log, "nb")
    assert await table.load()
    assert reopened.get_one({"type": "cell", "id": "c"})["input"] == "v9"
    reopened.set({"type": "cell", "id": "c", "input": "v10", "pos": 0}, ME)
    assert await table.commit(Origin.of_user("bob")) == 11
    await log.settled()
    log.close()
    log.worker.close()


async def test_retention_thins_old_history_to_one_version_per_hour(open_log):
    import time

    from jupyter_cocalc_sync.store.history import HistorySquasher, Retention

    log = await open_log()
    _, versions = await _edits(log, ["alice", "bob"] * 10)
    squasher = HistorySquasher(log, Retention(keep_all=3600.0, keep_hourly=0.0))
    assert await squasher.apply_retention() == 0  # nothing is older than an hour yet
    await squasher.apply_retention(now=time.time() + 2 * 3600)
    kept = [v.version for v in await log.versions("nb")]
    # one per hour (two if the edits straddled an hour boundary), the last one included
    assert 1 <= len(kept) <= 2 and kept[-1] == versions[-1]
    assert await _input_at(log, kept[-1]) == "v19"
    authors = (await log.versions("nb"))[-1].author
    assert authors in ("alice, bob", "bob")
    log.close()
    log.worker.close()


def test_the_revert_patch_turns_the_notebook_back_field_by_field():
    from jupyter_cocalc_sync.format.states import revert_patch

    db = notebook_syncdb()
    stream = {"output_type": "stream", "name": "stdout", "text": "1\n"}
    db.set({"type": "cell", "id": "a", "input": "x", "pos": 0, "output": {"0": stream}}, ME)
    db.set({"type": "cell", "id": "b", "input": "y", "pos": 1}, ME)
    db.commit(ME)
    old = db.get_update()
    expected = sorted(db.get(), key=lambda r: r["id"])
    db.set({"type": "cell", "id": "a", "input": "x2", "collapsed": True}, ME)
    db.set(
        {"type": "cell", "id": "a", "output": {"0": {**stream, "text": "1\n2\n"}, "1": stream}}, ME
    )
    db.delete({"type": "cell", "id": "b"}, ME)
    db.set({"type": "cell", "id": "c", "input": "new", "pos": 2}, ME)
    db.commit(ME)
    sets, deletes = revert_patch(db.get_update(), old)
    assert deletes == [{"type": "cell", "id": "c"}]
    assert {r["id"] for r in sets} == {"a", "b"}  # only what differs is written
    for where in deletes:
        db.delete(where, ME)
    for record in sets:
        db.set(record, ME)
    assert sorted(db.get(), key=lambda r: r["id"]) == expected


def test_the_replay_worker_leaves_with_its_server(tmp_path):
    import time

    import psutil

    script = tmp_path / "server.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, os
            from jupyter_cocalc_sync.store.replay import ReplayPool, merged_state

            async def main():
                pool = ReplayPool()
                await pool.run(merged_state, None, [])
                print(*pool._executor._processes, flush=True)
                os._exit(0)  # gone without a shutdown, as after SIGKILL

            if __name__ == "__main__":
                asyncio.run(main())
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    worker = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while psutil.pid_exists(worker) and psutil.Process(worker).status() != "zombie":
        assert time.monotonic() < deadline, "the replay worker outlived its server"
        time.sleep(0.1)  # another process's exit: nothing to await


async def test_a_big_snapshot_is_written_to_sqlite_a_piece_at_a_time(tmp_path, monkeypatch):
    # SQLite copies a bound blob whole while the GIL is held: a 20 MB snapshot stalled the
    # event loop for 20–50 ms though the store's own thread wrote it
    bound: list[int] = []  # the sizes of the bytes bound to statements on snapshots

    class Recording(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            if sql.startswith("INSERT INTO snapshots"):
                bound.extend(len(p) if isinstance(p, bytes) else 0 for p in parameters)
            return super().execute(sql, parameters)

    real_connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda *args, **kwargs: real_connect(*args, factory=Recording, **kwargs)
    )
    log = ChangeLog(SQLiteWorker(tmp_path / "log.db"), snapshot_interval=2)
    await log.open()
    db = notebook_syncdb()
    table = LoggedTable(db, log, "nb")
    for i in range(2):
        db.set({"type": "cell", "id": f"c{i}", "input": f"{i}" * (3 * BLOB_PIECE)}, ME)
        await table.commit(ME)
    await log.settled()
    snapshot = await log.worker.run(
        lambda conn: conn.execute("SELECT version, data FROM snapshots WHERE doc = 'nb'").fetchone()
    )
    assert snapshot is not None and snapshot[0] == 2
    assert len(snapshot[1]) > 6 * BLOB_PIECE
    assert bound, "the snapshot was not written through the recording connection"
    assert max(bound) < BLOB_PIECE, "the snapshot was bound whole"
    reopened = notebook_syncdb()
    reopened.apply_update(snapshot[1], STORE)
    assert sorted(reopened.get(), key=lambda r: r["id"]) == sorted(db.get(), key=lambda r: r["id"])
    log.close()
    log.worker.close()
