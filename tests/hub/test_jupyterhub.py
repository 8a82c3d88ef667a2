"""JupyterHub: single-user servers with this extension behind a real hub, its proxy and OAuth.

Alice runs a server; Bob gets access through JupyterHub's sharing (a share code he accepts).
Through the proxy, with the cookies a browser would hold: the collaboration session, both
rooms, REST, execution and blobs; history and awareness name each hub user; and a silent
cell keeps the hub's ``last_activity`` of the server moving while nothing else happens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from helpers import Server, eventually, png_bytes, poll, write_notebook
from httpx_ws import aconnect_ws
from hub_support import Hub, HubUser, ServerSession, hub_missing_reason

from jupyter_cocalc_sync.client import CocalcSyncClient
from jupyter_cocalc_sync.transport import protocol

pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]

NB = "api/cocalc-sync/notebooks/shared.ipynb"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if reason := hub_missing_reason():
        pytest.skip(reason)
    hub = Hub(tmp_path_factory.mktemp("hub")).start()
    yield hub
    hub.stop()


async def start_server(hub: Hub, name: str) -> None:
    """Start ``name``'s server (unless it runs) and wait until the hub says it is ready."""
    async with hub.api() as api:
        user = (await api.get(f"/users/{name}")).json()
        if not user["servers"].get("", {}).get("ready"):
            response = await api.post(f"/users/{name}/server")
            assert response.status_code in (201, 202), response.text

        async def ready():
            user = (await api.get(f"/users/{name}")).json()
            return user["servers"].get("", {}).get("ready")

        await poll(ready, timeout=120, every=0.2)


async def stop_server(hub: Hub, name: str) -> None:
    """Stop ``name``'s server and wait until the hub has it stopped (a start while its stop
    is pending is refused)."""
    async with hub.api() as api:
        assert (await api.delete(f"/users/{name}/server")).status_code in (202, 204)

        async def stopped():
            user = (await api.get(f"/users/{name}")).json()
            return "" not in user["servers"]

        await poll(stopped, timeout=60, every=0.2)


async def server_last_activity(hub: Hub, name: str) -> datetime:
    """The hub's ``last_activity`` of ``name``'s server (what idle cullers read)."""
    async with hub.api() as api:
        user = (await api.get(f"/users/{name}")).json()
    return datetime.fromisoformat(user["servers"][""]["last_activity"])


async def share_by_code(owner: HubUser, guest: HubUser) -> None:
    """The owner makes a share code of their server; the guest accepts it (JupyterHub 5+)."""
    response = await owner.http.post(
        f"/hub/api/share-codes/{owner.name}/", headers=owner.xsrf_headers("/hub/"), json={}
    )
    assert response.status_code == 200, response.text
    code = response.json()["code"]
    await guest.http.get("/hub/accept-share", params={"code": code})
    xsrf = guest.xsrf_headers("/hub/")["X-XSRFToken"]
    accepted = await guest.http.post("/hub/accept-share", data={"code": code, "_xsrf": xsrf})
    assert accepted.status_code == 200, accepted.text


async def identity(session: ServerSession) -> dict:
    response = await session.request("GET", "api/me")
    response.raise_for_status()
    return response.json()["identity"]


def finished(nb, cell_id: str) -> bool:
    record = nb.get_one({"type": "cell", "id": cell_id}) or {}
    return record.get("state") == "idle" and record.get("end") is not None


def text_of(nb, cell_id: str) -> str:
    output = (nb.get_one({"type": "cell", "id": cell_id}) or {}).get("output") or {}
    return "".join(o.get("text", "") for o in output.values() if o.get("output_type") == "stream")


async def test_hub_users_share_a_server_edit_and_run_under_their_own_names(hub):
    png = png_bytes()
    cells = [
        "print('hello from', __import__('os').environ['JUPYTERHUB_USER'])",
        "from IPython.display import Image\nimport base64\n"
        f"Image(data=base64.b64decode({base64.b64encode(png).decode()!r}))",
        "print('bob ran this')",
    ]
    write_notebook(hub.homes / "alice" / "shared.ipynb", cells)
    alice, bob, carol = HubUser(hub, "alice"), HubUser(hub, "bob"), HubUser(hub, "carol")
    clients: list[CocalcSyncClient] = []
    try:
        await alice.login()  # (logging in creates the hub user)
        await bob.login()
        await carol.login()
        await start_server(hub, "alice")
        # Bob cannot enter Alice's server until she shares it
        assert (await bob.http.get("/user/alice/api/contents")).status_code == 403
        await share_by_code(alice, bob)
        a, b = await alice.enter("alice"), await bob.enter("alice")
        assert (await identity(a))["name"] == "alice"
        assert (await identity(b))["name"] == "bob"
        # a direct share works the same
        shared = await alice.http.post(
            "/hub/api/shares/alice/", headers=alice.xsrf_headers("/hub/"), json={"user": "carol"}
        )
        assert shared.status_code == 200, shared.text
        c = await carol.enter("alice")
        assert (await identity(c))["name"] == "carol"
        assert (await c.request("GET", NB)).status_code == 200

        # REST through the proxy, under the hub's URL prefix
        listing = await a.request("GET", "api/contents")
        assert "shared.ipynb" in [f["name"] for f in listing.json()["content"]]
        opened = await a.request("GET", NB)
        assert opened.status_code == 200 and opened.json()["path"] == "shared.ipynb"

        # the SyncDB room: each user's own client
        alice_client = CocalcSyncClient(a.base_url, http=a.client())
        bob_client = CocalcSyncClient(b.base_url, http=b.client())
        clients += [alice_client, bob_client]
        alice_nb = await alice_client.open("shared.ipynb")
        bob_nb = await bob_client.open("shared.ipynb")

        # execution: Alice asks over REST, Bob by setting the cell's state in his replica;
        # every version the server writes for a run is in the name of who asked for it
        async def authors_of_run(ask, watcher, cell_id: str) -> set[str | None]:
            before = len((await a.request("GET", NB + "/history")).json()["versions"])
            await ask()
            await watcher.wait_for(lambda n: finished(n, cell_id), timeout=120)
            history = (await a.request("GET", NB + "/history")).json()["versions"]
            return {v["author"] for v in history[before:]}

        async def alice_runs():
            run = await a.request("POST", NB + "/run", json={"cell_ids": ["cell-0", "cell-1"]})
            assert run.status_code == 202, run.text

        async def bob_runs():
            bob_nb.set({"type": "cell", "id": "cell-2", "state": "start"})
            bob_nb.commit()

        assert await authors_of_run(alice_runs, bob_nb, "cell-1") == {"alice"}
        assert text_of(bob_nb, "cell-0") == "hello from alice\n"
        assert await authors_of_run(bob_runs, alice_nb, "cell-2") == {"bob"}
        assert text_of(alice_nb, "cell-2") == "bob ran this\n"

        # blobs: the image is in the store and served to Bob through the proxy
        image = next(iter(alice_nb.get_one({"type": "cell", "id": "cell-1"})["output"].values()))
        sha1 = hashlib.sha1(png).hexdigest()
        assert image["data"]["image/png"] == f"sha1:{sha1}"
        blob = await b.request("GET", f"api/cocalc-sync/blobs/{sha1}")
        assert blob.status_code == 200 and blob.content == png

        # both edit: Bob in JupyterLab's room, Alice in her SyncDB replica
        before = len((await a.request("GET", NB + "/history")).json()["versions"])
        bob_lab = Server(b.base_url, None, http=b.client())
        async with bob_lab.ynotebook("shared.ipynb") as ynb:
            source = ynb.ycells[0]["source"]
            source += "  # bob was here"  # (on a local name: the Text is edited, not replaced)
            await alice_nb.wait_for(
                lambda n: "bob was here" in n.get_one({"type": "cell", "id": "cell-0"})["input"]
            )
            alice_nb.set({"type": "cell", "id": "cell-2", "input": "print('alice edited')"})
            alice_nb.commit()
            await eventually(
                lambda: str(ynb.ycells[2]["source"]) == "print('alice edited')", ynb.ydoc
            )
        await bob_lab.aclose()

        # history names the hub users as the editors too
        history = (await a.request("GET", NB + "/history")).json()["versions"]
        assert {v["author"] for v in history[before:]} == {"alice", "bob"}

        # awareness: each client announces the name the server's /api/me gives it
        await awareness_shows_both_names(a, b)

        # the home directory (network storage, say) holds no SQLite file of the extension
        # or of the file-id manager: the operator's config put them on local disk
        assert (hub.local / "alice" / "cocalc.db").exists()
        assert not [p.name for p in (hub.homes / "alice").rglob("*.db*")]
    finally:
        for client in clients:
            await client.close()
        for user in (alice, bob, carol):
            await user.aclose()


async def awareness_shows_both_names(a: ServerSession, b: ServerSession) -> None:
    session = (
        await a.request(
            "PUT",
            "api/collaboration/session/shared.ipynb",
            content=json.dumps({"format": "json", "type": "notebook"}),
        )
    ).json()
    room = f"json:notebook:{session['fileId']}?sessionId={session['sessionId']}"
    async with contextlib.AsyncExitStack() as stack:
        sockets = []
        for client_id, user in ((1001, a), (2002, b)):
            http = await stack.enter_async_context(user.client())
            url = user.base_url.replace("http", "ws", 1) + f"/api/collaboration/room/{room}"
            ws = await stack.enter_async_context(aconnect_ws(url, http))
            await ws.send_bytes(awareness_of(client_id, await identity(user)))
            sockets.append(ws)
        # each sees the other's cursor under the other's hub name
        assert await name_announced(sockets[0], 2002) == "bob"
        assert await name_announced(sockets[1], 1001) == "alice"


async def name_announced(ws, client_id: int) -> str:
    async with asyncio.timeout(15):
        while True:
            message = protocol.decode(await ws.receive_bytes())
            if message.kind != protocol.AWARENESS:
                continue
            for cid, _clock, state in protocol.decode_awareness(message.payload):
                if cid == client_id and state not in (None, "null"):
                    return json.loads(state)["user"]["name"]


def awareness_of(client_id: int, user: dict) -> bytes:
    state = json.dumps({"user": {"name": user["name"], "username": user["username"]}})
    return protocol.awareness_message(protocol.encode_awareness([(client_id, 1, state)]))


async def test_a_silent_cell_keeps_the_server_active_for_the_hub_and_idle_does_not(hub):
    write_notebook(hub.homes / "alice" / "silent.ipynb", ["import time\ntime.sleep(60)"])
    alice = HubUser(hub, "alice")
    try:
        await alice.login()
        await start_server(hub, "alice")
        a = await alice.enter("alice")
        silent = "api/cocalc-sync/notebooks/silent.ipynb"
        # reading the state is not activity (jupyter_server's no_track_activity)
        quiet = {"no_track_activity": "1"}

        async def state() -> str:
            records = (await a.request("GET", silent, params=quiet)).json()["records"]
            return next(r for r in records if r.get("id") == "cell-0").get("state")

        run = await a.request("POST", silent + "/run", json={"cell_ids": ["cell-0"]})
        assert run.status_code == 202, run.text

        async def busy():
            return await state() == "busy"

        await poll(busy, timeout=60)
        # no client is connected, the cell prints nothing: only the extension says it runs
        running_since = datetime.now(UTC)

        async def reported_while_running():
            return await server_last_activity(hub, "alice") > running_since + timedelta(seconds=2)

        await poll(reported_while_running, timeout=40, every=0.5)
        assert await state() == "busy"

        assert (await a.request("POST", silent + "/interrupt")).status_code == 200

        async def idle():
            return await state() == "idle"

        await poll(idle, timeout=30)
        await asyncio.sleep(2)  # the last reports of the run reach the hub (every second)
        rested = await server_last_activity(hub, "alice")
        await asyncio.sleep(3)  # three reporting intervals with nothing going on
        assert await server_last_activity(hub, "alice") == rested
    finally:
        await alice.aclose()
