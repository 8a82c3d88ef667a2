"""Two users' servers in one PostgreSQL database: neither can see or change the other's store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("psycopg")
import psycopg

from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import Origin
from jupyter_cocalc_sync.store import ChangeLog, LoggedTable
from jupyter_cocalc_sync.store.pg_provision import (
    pre_spawn_hook,
    provision_user,
    role_name,
)
from jupyter_cocalc_sync.store.postgres import PostgresWorker


def connect(environment: dict[str, str]) -> psycopg.Connection:
    """What the user's server (and the user's code in it) can connect as."""
    return psycopg.connect(
        environment["COCALC_SYNC_STORE_URL"], password=environment["PGPASSWORD"], autocommit=True
    )


def worker_of(environment: dict[str, str]) -> PostgresWorker:
    url = environment["COCALC_SYNC_STORE_URL"] + "&password=" + environment["PGPASSWORD"]
    return PostgresWorker(url, lock_wait=0)


async def test_one_user_cannot_see_or_change_another_users_history(postgres_cluster):
    admin = postgres_cluster.create_database()
    alice = provision_user(admin, "alice")
    bob = provision_user(admin, "Bob@example.org")

    # both servers run at once: one writer per schema, not per database
    alice_worker, bob_worker = worker_of(alice), worker_of(bob)
    alice_log, bob_log = ChangeLog(alice_worker), ChangeLog(bob_worker)
    await alice_log.open()
    await bob_log.open()
    db = notebook_syncdb()
    table = LoggedTable(db, alice_log, "shared-id")
    alice_origin = Origin.of_user("alice")
    db.set({"type": "cell", "id": "c", "input": "alice's secret", "pos": 0}, alice_origin)
    assert await table.commit(alice_origin) == 1
    await alice_log.settled()
    # bob's server, asking for the same document id, finds a store of its own, empty
    assert await bob_log.versions("shared-id") == []
    assert await bob_log.load("shared-id") == (None, 0)

    alice_schema = role_name("alice")
    with connect(bob) as conn:
        for statement in (
            f"SELECT data FROM {alice_schema}.changes",
            f"SELECT data FROM {alice_schema}.snapshots",
            f"DELETE FROM {alice_schema}.changes",
            f"INSERT INTO {alice_schema}.changes VALUES ('x', 9, 0, NULL, '')",
            f"DROP TABLE {alice_schema}.changes",
            f"SET ROLE {alice_schema}",
            f"ALTER ROLE {alice_schema} PASSWORD 'mine'",
            "CREATE TABLE public.dropbox (x TEXT)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # the wrong password does not get in
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect({**alice, "PGPASSWORD": bob["PGPASSWORD"]})
    # alice's history is whole
    assert [v.version for v in await alice_log.versions("shared-id")] == [1]
    for log, worker in ((alice_log, alice_worker), (bob_log, bob_worker)):
        log.close()
        worker.close()


async def test_provisioning_again_rotates_the_password_and_keeps_the_history(postgres_cluster):
    admin = postgres_cluster.create_database()
    first = provision_user(admin, "alice")
    worker = worker_of(first)
    log = ChangeLog(worker)
    await log.open()
    assert await log.append("nb", b"\x00\x00") == 1
    await log.settled()
    log.close()
    worker.close()

    class Spawner:  # what JupyterHub's pre_spawn_hook is given: the user and an environment
        user = type("User", (), {"name": "alice"})()
        environment: dict[str, str] = {}

    spawner = Spawner()
    await pre_spawn_hook(admin)(spawner)
    again = spawner.environment
    assert again["COCALC_SYNC_STORE_URL"] == first["COCALC_SYNC_STORE_URL"]
    assert again["PGPASSWORD"] != first["PGPASSWORD"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(first)
    worker = worker_of(again)
    log = ChangeLog(worker)
    await log.open()
    assert [v.version for v in await log.versions("nb")] == [1]
    log.close()
    worker.close()


def test_the_command_prints_the_environment_for_the_spawner(postgres_cluster):
    admin = postgres_cluster.create_database()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_cocalc_sync.store.pg_provision",
            "provision",
            "--user",
            "carol",
            "--admin-url",
            admin,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    environment = json.loads(done.stdout)
    assert set(environment) == {"COCALC_SYNC_STORE_URL", "PGPASSWORD"}
    with connect(environment) as conn:
        assert conn.execute("SELECT current_schema()").fetchone()[0] == role_name("carol")
