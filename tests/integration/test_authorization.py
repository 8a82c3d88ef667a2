"""Authorization by action: each cell of the table in docs/rest.md, over REST and both rooms.

The test authorizer grants what the request's ``X-Test-Permissions`` header lists
(``resource:action`` pairs), so one server serves readers, writers and runners.
"""

from __future__ import annotations

import json

import pytest
from helpers import Server, cell_sources, eventually, poll, write_notebook
from httpx_ws import aconnect_ws
from jupyter_server.auth import Authorizer

from jupyter_cocalc_sync.client import CocalcSyncClient

HEADER = "X-Test-Permissions"
READ = "contents:read"
WRITE = "contents:write"
EXECUTE = "kernels:execute"
EXPORT = "nbconvert:read"
LIST_KERNELS = "kernels:read"
EVERYTHING = {READ, WRITE, EXECUTE, EXPORT, LIST_KERNELS}

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
#: (method, route, body, the one permission it needs)
TABLE = [
    ("GET", NB, None, READ),
    ("GET", NB + "/history", None, READ),
    ("GET", NB + "/history/1", None, READ),
    ("GET", NB + "/cells/cell-0/more_output", None, READ),
    ("GET", "/api/cocalc-sync/blobs/" + "0" * 40, None, READ),
    ("PUT", "/api/collaboration/session/nb.ipynb", {"format": "json", "type": "notebook"}, READ),
    ("POST", NB + "/records", {"set": [{"type": "cell", "id": "cell-0", "input": "y"}]}, WRITE),
    ("POST", NB + "/revert", {"version": 1}, WRITE),
    ("POST", NB + "/input", {"cell_id": "cell-0", "value": "x"}, WRITE),
    ("POST", NB + "/run", {"cell_ids": []}, EXECUTE),
    ("POST", NB + "/interrupt", None, EXECUTE),
    ("POST", NB + "/restart", None, EXECUTE),
    ("POST", NB + "/kernel", {"name": "no-such-kernel"}, EXECUTE),
    ("POST", "/api/kernels/k-1/execute", {"cell_id": "cell-0", "document_id": "x"}, EXECUTE),
    ("GET", "/api/kernels/k-1/execute", None, READ),
    ("GET", "/api/kernels/k-1/requests/r-1", None, READ),
    ("DELETE", "/api/kernels/k-1/requests/r-1", None, EXECUTE),
    ("POST", "/api/kernels/k-1/input", {"input": "x"}, WRITE),
    ("POST", "/api/cocalc-sync/execute", {"kernel": "no-such-kernel", "code": "1"}, EXECUTE),
    ("GET", NB + "/export", None, EXPORT),
    ("POST", NB + "/assignment/student", {"target": "student.ipynb"}, WRITE),
    ("GET", NB + "/assignment/tampered", None, READ),
    ("GET", "/api/cocalc-sync/kernels", None, LIST_KERNELS),
    ("GET", "/api/cocalc-sync/status", None, LIST_KERNELS),
]


class HeaderAuthorizer(Authorizer):
    """Grants the ``resource:action`` pairs of the request's header (all without it)."""

    def is_authorized(self, handler, user, action: str, resource: str) -> bool:
        granted = handler.request.headers.get(HEADER)
        return granted is None or f"{resource}:{action}" in granted.split(",")


@pytest.fixture
def jp_server_config(jp_server_config):
    jp_server_config["ServerApp"]["authorizer_class"] = HeaderAuthorizer
    return jp_server_config


def as_user(server: Server, *granted: str) -> Server:
    """A client of ``server`` whose requests are granted only ``granted``."""
    user = Server(server.base_url, server.token)
    user.http.headers[HEADER] = ",".join(granted)
    return user


def live_client(server: Server, *granted: str) -> CocalcSyncClient:
    client = CocalcSyncClient(server.base_url, server.token)
    client.http.headers[HEADER] = ",".join(granted)
    return client


def extension(jp_serverapp):
    return jp_serverapp.web_app.settings["cocalc_sync"]


async def records(server: Server) -> list[dict]:
    return (await server.http.get(NB)).json()["records"]


def cell(all_records: list[dict], cell_id: str = "cell-0") -> dict:
    return next(r for r in all_records if r["type"] == "cell" and r["id"] == cell_id)


async def test_each_route_needs_exactly_its_permission(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    version = (await server.http.get(NB)).json()["version"]
    wrong = []
    for method, route, body, needed in TABLE:
        content = None if body is None else json.dumps(body)
        without = as_user(server, *(EVERYTHING - {needed}))
        refused = await without.http.request(method, route, content=content)
        with_it = as_user(server, needed)
        allowed = await with_it.http.request(method, route, content=content)
        await without.aclose()
        await with_it.aclose()
        if refused.status_code != 403 or needed not in refused.json()["message"]:
            wrong.append(f"{method} {route} without {needed}: {refused.status_code}")
        if allowed.status_code in (401, 403) or allowed.status_code >= 500:
            wrong.append(f"{method} {route} with {needed}: {allowed.status_code} {allowed.text}")
        if needed != WRITE and method == "POST" and "/records" in route:
            wrong.append("the table is wrong")
    assert not wrong, wrong
    # the refused writes changed nothing; the allowed ones did (records, then revert)
    assert (await server.http.get(NB)).json()["version"] == version + 2


@pytest.mark.parametrize(
    "room", ["/api/cocalc-sync/room/syncdb:{}", "/api/collaboration/room/json:notebook:{}"]
)
async def test_joining_a_room_needs_contents_read(server, root_dir, room):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    file_id = (await server.http.get(NB, params={"records": "false"})).json()["file_id"]
    outsider = as_user(server, WRITE, EXECUTE, EXPORT, LIST_KERNELS)
    with pytest.raises(Exception) as refused:
        async with aconnect_ws(server.ws_url(room.format(file_id)), outsider.http):
            pass
    assert "403" in str(refused.value)
    await outsider.aclose()


async def test_a_reader_follows_the_syncdb_room_and_its_edits_are_dropped(
    server, root_dir, jp_serverapp
):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    reader_client, writer_client = live_client(server, READ), live_client(server, READ, WRITE)
    reader = await reader_client.open("nb.ipynb")
    writer = await writer_client.open("nb.ipynb")
    room = extension(jp_serverapp).notebooks.get(reader.file_id).broadcast.rooms["syncdb"]

    writer.set({"type": "cell", "id": "cell-0", "input": "x = 2"})
    writer.commit()
    await reader.wait_for(
        lambda nb: nb.get_one({"type": "cell", "id": "cell-0"})["input"] == "x = 2"
    )

    reader.set({"type": "cell", "id": "cell-0", "input": "hacked"})
    reader.commit()
    await eventually(lambda: room.dropped_updates > 0)
    assert cell(await records(server))["input"] == "x = 2"
    # the reader still receives what writers do after it tried
    writer.set({"type": "cell", "id": "cell-1", "input": "new", "pos": 2})
    writer.commit()
    await reader.wait_for(lambda nb: nb.get_one({"type": "cell", "id": "cell-1"}) is not None)
    assert cell(await records(server))["input"] == "x = 2"
    await reader_client.close()
    await writer_client.close()


@pytest.mark.parametrize("may_write", [False, True])
async def test_jupyterlab_room_reader_and_writer(server, root_dir, jp_serverapp, may_write):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    granted = (READ, WRITE) if may_write else (READ,)
    user = as_user(server, *granted)
    async with user.ynotebook("nb.ipynb") as lab:  # the session PUT and the room, as a reader
        assert cell_sources(lab) == ["x = 1"]
        await server.http.post(
            NB + "/records", json={"set": [{"type": "cell", "id": "cell-0", "input": "x = 2"}]}
        )
        await eventually(lambda: cell_sources(lab) == ["x = 2"], lab.ydoc)
        source = lab.ycells[0]["source"]
        source += "  # edited"  # on a local name: ycell["source"] += … would replace the Text
        if may_write:

            async def applied():
                return cell(await records(server))["input"] == "x = 2  # edited"

            await poll(applied)
        else:
            file_id = (await user.session("nb.ipynb"))["fileId"]
            room = extension(jp_serverapp).notebooks.get(file_id).broadcast.rooms["notebook"]
            await eventually(lambda: room.dropped_updates > 0)
            assert cell(await records(server))["input"] == "x = 2"
    await user.aclose()


@pytest.mark.parametrize("may_execute", [False, True])
async def test_running_over_the_syncdb_room_needs_kernels_execute(server, root_dir, may_execute):
    write_notebook(root_dir / "nb.ipynb", ["40 + 2"])
    granted = (READ, WRITE, EXECUTE) if may_execute else (READ, WRITE)
    client = live_client(server, *granted)
    nb = await client.open("nb.ipynb")
    nb.set({"type": "cell", "id": "cell-0", "state": "start", "input": "40 + 2 "})
    nb.commit()

    def settled(live) -> bool:
        record = live.get_one({"type": "cell", "id": "cell-0"})
        return record.get("state") == "idle" and record.get("input") == "40 + 2 "

    await nb.wait_for(settled, timeout=60)
    after = cell(await records(server))
    assert after["input"] == "40 + 2 "  # the edit itself needs only contents:write
    if may_execute:
        assert after["exec_count"] == 1
    else:
        assert after.get("exec_count") is None and not after.get("output")
        assert (await server.http.get("/api/kernels")).json() == []
    await client.close()


async def test_asking_for_a_run_through_records_or_revert_needs_kernels_execute(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["input('wait: ')"])
    writer = as_user(server, READ, WRITE)
    start = {"set": [{"type": "cell", "id": "cell-0", "state": "start"}]}
    refused = await writer.http.post(NB + "/records", json=start)
    assert refused.status_code == 403 and EXECUTE in refused.json()["message"]
    # a version where the cell asked for a run (made by someone who may run code) ...
    asked = (await server.http.post(NB + "/records", json=start)).json()["version"]

    def waiting_for_input(c: dict) -> bool:
        return any(
            o.get("output_type") == "input_request" for o in (c.get("output") or {}).values()
        )

    # the run waits for an answer, so the revert below is made while it runs (once it is
    # over, its outputs are squashed into the version that asked for it)
    await poll(lambda: records_match(server, waiting_for_input), timeout=60)
    # ... reverted to by a writer restores the content (no output yet) and asks for no run:
    # whether the cell runs is live, not content
    response = await writer.http.post(NB + "/revert", json={"version": asked})
    assert response.status_code == 200
    after = cell(await records(server))
    assert after["state"] == "busy" and not after.get("output")
    for kernel in (await server.http.get("/api/kernels")).json():
        await server.http.post(f"/api/kernels/{kernel['id']}/interrupt")
    await poll(lambda: records_match(server, lambda c: c["state"] == "idle"), timeout=60)
    await writer.aclose()


async def records_match(server: Server, predicate) -> bool:
    return predicate(cell(await records(server)))


async def test_a_readers_save_request_is_refused(server, root_dir):
    from jupyter_cocalc_sync.transport import protocol

    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    reader = as_user(server, READ)
    session = await reader.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    async with aconnect_ws(url, reader.http) as ws:
        await ws.send_bytes(b"\x02\x04save\x07")  # RAW "save", request 7
        while True:
            message = protocol.decode(await ws.receive_bytes())
            if message.kind == protocol.RAW:
                break
    assert json.loads(message.raw) == {"type": "save", "responseTo": 7, "status": "failed"}
    await reader.aclose()


async def test_a_widget_change_reaches_the_kernel_only_from_who_may_execute(server, root_dir):
    source = "from ipywidgets import IntSlider\ns = IntSlider(value=3); s"
    write_notebook(root_dir / "nb.ipynb", [source, "print(s.value)"])
    runner = await live_client(server, READ, WRITE, EXECUTE).open("nb.ipynb")
    runner.set({"type": "cell", "id": "cell-0", "state": "start"})
    runner.commit()
    sliders = await runner.widgets.wait_for(lambda w: w.find(model_name="IntSliderModel"), 60)
    slider = sliders[0]
    writer = await live_client(server, READ, WRITE).open("nb.ipynb")
    await writer.widgets.wait_for(lambda w: slider in w.models())

    writer.widgets.set_value(slider, {"value": 8})
    await writer.widgets.wait_for(lambda w: w.state(slider)["value"] == 3)  # undone
    runner.set({"type": "cell", "id": "cell-1", "state": "start"})
    runner.commit()

    def printed(nb) -> str:
        output = (nb.get_one({"type": "cell", "id": "cell-1"}) or {}).get("output") or {}
        return "".join(o.get("text", "") for o in output.values())

    assert await runner.wait_for(printed, timeout=60) == "3\n"
    await runner.client.close()
    await writer.client.close()
