"""The PostgreSQL store on a real server: one writer, takeover, a restart mid-edit, migrations."""

from __future__ import annotations

import asyncio

import pytest
from helpers import eventually

from jupyter_cocalc_sync.errors import StoreInUseError
from jupyter_cocalc_sync.store import ChangeLog
from jupyter_cocalc_sync.store.pg_schema import MIGRATIONS, SchemaTooNewError, migrate

pytest.importorskip("psycopg")
from jupyter_cocalc_sync.store.postgres import (
    PostgresWorker,
    StoreTakenOverError,
)


@pytest.fixture
def database(postgres_cluster) -> str:
    return postgres_cluster.create_database()


async def versions_of(log: ChangeLog, doc: str) -> list[int]:
    return [v.version for v in await log.versions(doc)]


def test_a_second_server_on_the_same_schema_refuses_and_a_third_takes_over(database):
    first = PostgresWorker(database)
    first.open_blocking()
    second = PostgresWorker(database, lock_wait=0.5)
    with pytest.raises(StoreInUseError, match=r"is in use by another server \(backend pid \d+"):
        second.open_blocking()
    second.close()
    first.close()  # the lock goes with the session
    third = PostgresWorker(database, lock_wait=0)
    third.open_blocking()
    third.close()


def backend_pid(worker: PostgresWorker) -> int:
    return worker.run_sync(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone()[0])


def lock_waiters(cluster) -> int:
    with cluster.admin() as conn:
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return conn.execute(query).fetchone()[0]


async def test_a_server_that_dies_hands_the_store_over(database, postgres_cluster):
    first = PostgresWorker(database)
    first.open_blocking()
    waiting = PostgresWorker(database, lock_wait=60)
    taking = asyncio.get_running_loop().run_in_executor(None, waiting.open_blocking)
    await eventually(lambda: lock_waiters(postgres_cluster) == 1, timeout=30)
    # the dead pod's session is dropped by the database (here at once; a vanished node's
    # within the keepalive time), and the waiting server takes the store
    postgres_cluster.terminate_pid(backend_pid(first))
    await asyncio.wait_for(taking, 60)
    log = ChangeLog(waiting)
    await log.open()
    assert await log.append("nb", b"\x00\x00") == 1
    await log.settled()
    log.close()
    waiting.close()
    first.close()


@pytest.mark.expect_errors(r"writing the change log of nb failed")
async def test_a_database_restart_mid_edit_loses_nothing_acknowledged_and_heals(
    database, postgres_cluster
):
    worker = PostgresWorker(database)
    log = ChangeLog(worker)
    await log.open()
    states: list[BaseException | None] = []
    log.watch("nb", states.append)
    assert [await log.append("nb", b"\x00\x00") for _ in range(3)] == [1, 2, 3]
    session = worker.session

    postgres_cluster.stop()
    try:
        during = [log.append("nb", b"\x00\x00") for _ in range(3)]
        await eventually(lambda: log.failure("nb") is not None, timeout=30)
        assert states and states[0] is not None  # the document's watchers are told
        assert not any(f.done() for f in during)  # nothing is acknowledged while it is down
        later = log.append("nb", b"\x00\x00")  # queued behind the failing ones
    finally:
        postgres_cluster.start()
    # heals by itself: everything queued is written, in order, on a new connection
    assert await asyncio.wait_for(asyncio.gather(*during, later), 60) == [4, 5, 6, 7]
    assert states[-1] is None and log.failure("nb") is None
    assert worker.session > session
    assert await versions_of(log, "nb") == [1, 2, 3, 4, 5, 6, 7]
    await log.settled()
    log.close()
    worker.close()


@pytest.mark.expect_errors(r"writing the change log of nb failed")
async def test_a_store_taken_over_while_disconnected_stops_writing_until_it_is_free(
    database, postgres_cluster
):
    mine = PostgresWorker(database)
    log = ChangeLog(mine)
    await log.open()
    assert await log.append("nb", b"\x00\x00") == 1
    # the connection is lost, and meanwhile another server takes the store and writes
    postgres_cluster.terminate_pid(backend_pid(mine))
    other = PostgresWorker(database, lock_wait=10)
    other_log = ChangeLog(other)
    await other_log.open()
    assert await other_log.append("nb", b"\x01\x00") == 2
    await other_log.settled()

    pending = log.append("nb", b"\x00\x00")
    await eventually(lambda: isinstance(log.failure("nb"), StoreTakenOverError), timeout=30)
    assert "in use by another server" in str(log.failure("nb"))
    assert not pending.done()
    other_log.close()
    other.close()
    # free again: the version numbers go on after the other server's, none is reused
    assert await asyncio.wait_for(pending, 60) == 3
    assert await versions_of(log, "nb") == [1, 2, 3]
    await log.settled()
    log.close()
    mine.close()


def test_migrations_apply_in_order_once_and_refuse_a_newer_schema(database):
    worker = PostgresWorker(database)
    worker.open_blocking()  # at the current version
    extra = (*MIGRATIONS, "CREATE TABLE later_one (x INT)", "INSERT INTO later_one VALUES (7)")

    def run(migrations: tuple[str, ...]) -> int:
        return worker.run_sync(lambda conn: migrate(conn, migrations))

    assert run(MIGRATIONS) == len(MIGRATIONS)  # nothing to do, nothing done twice
    assert run(extra) == len(extra)
    assert run(extra) == len(extra)
    rows = worker.run_sync(lambda conn: conn.execute("SELECT x FROM later_one").fetchall())
    assert rows == [(7,)]  # the second migration ran after the first, once
    with pytest.raises(SchemaTooNewError, match="upgrade the package"):
        run(MIGRATIONS)
    worker.close()


def test_the_url_password_never_reaches_a_message(database):
    url = database.replace("postgres@", "postgres:s3cret@")
    worker = PostgresWorker(url)
    assert "s3cret" not in worker.describe()
    worker.open_blocking()
    assert "s3cret" not in worker.describe()
    worker.close()


def test_a_database_that_cannot_be_reached_at_start_is_a_clear_refusal(tmp_path):
    from jupyter_cocalc_sync.errors import StoreLocationError
    from jupyter_cocalc_sync.store.opening import open_store

    url = f"postgresql://alice:s3cret@/cocalc?host={tmp_path}"  # no server listens there
    with pytest.raises(StoreLocationError, match=r"cannot be opened: .*No such file") as refused:
        open_store(store_path=str(tmp_path / "unused.db"), store_url=url, lock_wait=0)
    assert "s3cret" not in str(refused.value)
    assert "postgresql://alice@/cocalc" in str(refused.value)
    assert not (tmp_path / "unused.db").exists()  # SQLite was not opened instead
