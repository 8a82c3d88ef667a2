"""JupyterHub with the store in PostgreSQL: a role and a schema per user, made by the hook.

The hub's ``pre_spawn_hook`` (``pg_provision.pre_spawn_hook``) provisions each user at spawn and
hands the credentials to the single-user server in its environment, as docs/deployment.md
shows. Alice's history lands in her schema and outlives her server; code Bob runs in his own
server, with the credentials it has, cannot read Alice's history.
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import write_notebook
from hub_support import Hub, HubUser, hub_missing_reason
from test_jupyterhub import finished, start_server, stop_server, text_of

from jupyter_cocalc_sync.client import CocalcSyncClient
from jupyter_cocalc_sync.store.pg_provision import role_name

pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]

NB = "api/cocalc-sync/notebooks/nb.ipynb"

SNOOP = """\
import os, psycopg
try:
    with psycopg.connect(os.environ["COCALC_SYNC_STORE_URL"]) as conn:
        rows = conn.execute("SELECT count(*) FROM {schema}.changes").fetchall()
    print("READ", rows)
except psycopg.errors.InsufficientPrivilege:
    print("DENIED")
"""


@pytest.fixture(scope="module")
def hub_and_database(tmp_path_factory, postgres_cluster):
    if reason := hub_missing_reason():
        pytest.skip(reason)
    admin = postgres_cluster.create_database()
    hook = (
        "\nfrom jupyter_cocalc_sync.store.pg_provision import pre_spawn_hook\n"
        f"c.Spawner.pre_spawn_hook = pre_spawn_hook({admin!r})\n"
    )
    hub = Hub(tmp_path_factory.mktemp("pghub"), extra_config=hook).start()
    yield hub, admin
    hub.stop()


def count_changes(admin: str, user: str) -> int:
    with psycopg.connect(admin, autocommit=True) as conn:
        query = f"SELECT count(*) FROM {role_name(user)}.changes"
        return conn.execute(query).fetchone()[0]


async def test_each_hub_user_gets_a_schema_and_cannot_read_anothers(hub_and_database):
    hub, admin = hub_and_database
    alice_schema = role_name("alice")
    write_notebook(hub.homes / "alice" / "nb.ipynb", ["a = 1"])
    write_notebook(hub.homes / "bob" / "nb.ipynb", [SNOOP.format(schema=alice_schema)])
    for user in ("alice", "bob"):  # the local folder of the file-id database (SQLite)
        (hub.local / user).mkdir(parents=True, exist_ok=True)
    alice, bob = HubUser(hub, "alice"), HubUser(hub, "bob")
    try:
        await alice.login()
        await bob.login()
        await start_server(hub, "alice")
        await start_server(hub, "bob")
        a, b = await alice.enter("alice"), await bob.enter("bob")

        edit = {"set": [{"type": "cell", "id": "cell-0", "input": "a = 'in postgres'"}]}
        assert (await a.request("POST", NB + "/records", json=edit)).status_code == 200
        assert count_changes(admin, "alice") >= 1
        assert not (hub.local / "alice" / "cocalc.db").exists()  # not in SQLite

        # Bob's code, in his own server, with his server's credentials
        bob_client = CocalcSyncClient(b.base_url, http=b.client())
        try:
            bob_nb = await bob_client.open("nb.ipynb")
            assert (await b.request("POST", NB + "/run", json={"cell_ids": ["cell-0"]})).is_success
            await bob_nb.wait_for(lambda n: finished(n, "cell-0"), timeout=120)
            assert text_of(bob_nb, "cell-0") == "DENIED\n"
        finally:
            await bob_client.close()

        # Alice's server goes away and comes back (a new pod): her history is where she left it
        await stop_server(hub, "alice")
        await start_server(hub, "alice")
        a = await alice.enter("alice")
        history = (await a.request("GET", NB + "/history")).json()["versions"]
        reopened = (await a.request("GET", NB)).json()
        inputs = {r["id"]: r.get("input") for r in reopened["records"] if r["type"] == "cell"}
        assert inputs == {"cell-0": "a = 'in postgres'"} and len(history) >= 2
    finally:
        await alice.aclose()
        await bob.aclose()
