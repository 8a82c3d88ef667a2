"""Forks (``PUT|GET|DELETE /api/collaboration/fork/…``, as jupyter-docprovider's
``ForkManager`` calls them), who may use the history routes, and history that outlives the
document being unloaded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers import Server, eventually, poll, write_notebook
from httpx_ws import aconnect_ws
from servers import ServerProcess
from test_authorization import EVERYTHING, READ, WRITE, as_user
from test_authorization import jp_server_config as authorizing_config
from test_durability import extension, first_sight_is_durable, records_on_disk, slow_log
from test_timeline import NB, Tab, make_history, record_cells, timeline, undo_redo

FORK_EVENTS = "https://schema.jupyter.org/jupyter_collaboration/fork/v1"

jp_server_config = authorizing_config
__all__ = ["extension", "slow_log"]  # fixtures of test_durability, used here
pytestmark = pytest.mark.cocalc(timeline_burst_seconds=0)


async def records(server) -> list[tuple[str, str, list[str]]]:
    return record_cells((await server.http.get(NB)).json()["records"])


async def test_a_fork_takes_edits_apart_and_a_merge_commits_them(server, root_dir, jp_serverapp):
    events: list[dict] = []

    async def listener(logger, schema_id: str, data: dict) -> None:
        events.append(data)

    jp_serverapp.event_logger.add_listener(schema_id=FORK_EVENTS, listener=listener)
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2"])
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    lab, suggester = Tab(server), Tab(server)
    try:
        await lab.join(room, session["sessionId"])
        body = {"title": "t", "description": "d", "synchronize": False}
        created = await server.http.put(f"/api/collaboration/fork/{room}", content=json.dumps(body))
        assert created.status_code == 201, created.text
        fork = created.json()
        info = {"root_roomid": room, "synchronize": False, "title": "t", "description": "d"}
        assert fork["fork_info"] == info and fork["sessionId"] == session["sessionId"]
        forks = (await server.http.get(f"/api/collaboration/fork/{room}")).json()
        assert forks == {fork["fork_roomid"]: info}

        await suggester.join(fork["fork_roomid"], fork["sessionId"])
        source = suggester.ynb.ycells[0]["source"]
        source += "00"
        suggester.ynb.append_cell({"cell_type": "code", "id": "new", "source": "c = 3"})
        # in the fork only: the notebook, its tab and its history are as they were
        versions = len((await server.http.get(NB + "/history")).json()["versions"])
        await eventually(lambda: len(suggester.ynb.ycells) == 3, suggester.ynb.ydoc)
        assert [c[1] for c in await records(server)] == ["a = 1", "b = 2"]
        assert [c[1] for c in lab.cells()] == ["a = 1", "b = 2"]

        merged = await server.http.delete(
            f"/api/collaboration/fork/{fork['fork_roomid']}?merge=true"
        )
        assert merged.status_code == 200, merged.text
        expected = ["a = 100", "b = 2", "c = 3"]
        assert [c[1] for c in await records(server)] == expected
        await eventually(lambda: [c[1] for c in lab.cells()] == expected, lab.ynb.ydoc)
        history = (await server.http.get(NB + "/history")).json()["versions"]
        user = (await server.http.get("/api/me")).json()["identity"]["username"]
        assert len(history) > versions and history[-1]["author"] == user
        assert (await server.http.get(f"/api/collaboration/fork/{room}")).json() == {}
        gone = await server.http.delete(f"/api/collaboration/fork/{fork['fork_roomid']}?merge=true")
        assert gone.status_code == 404
    finally:
        await suggester.leave()
        await lab.leave()
    assert [(e["action"], e["fork_roomid"]) for e in events] == [
        ("create", fork["fork_roomid"]),
        ("delete", fork["fork_roomid"]),
    ]


async def test_a_synchronized_fork_follows_the_notebook(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["a = 1"])
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    body = json.dumps({"synchronize": True})
    fork = (await server.http.put(f"/api/collaboration/fork/{room}", content=body)).json()
    viewer = Tab(server)
    try:
        await viewer.join(fork["fork_roomid"], fork["sessionId"])
        set_input = {"set": [{"type": "cell", "id": "cell-0", "input": "a = 2"}]}
        (await server.http.post(NB + "/records", content=json.dumps(set_input))).raise_for_status()
        await eventually(lambda: viewer.cells()[0][1] == "a = 2", viewer.ynb.ydoc)
    finally:
        await viewer.leave()
    dropped = await server.http.delete(f"/api/collaboration/fork/{fork['fork_roomid']}?merge=false")
    assert dropped.status_code == 200
    assert [c[1] for c in await records(server)] == ["a = 2"]


async def test_a_synchronized_fork_sees_a_change_once_it_is_on_disk(
    server, root_dir, extension, slow_log
):
    write_notebook(root_dir / "nb.ipynb", ["a = 1"])
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    body = json.dumps({"synchronize": True})
    fork = (await server.http.put(f"/api/collaboration/fork/{room}", content=body)).json()
    lab, viewer = Tab(server), Tab(server)
    store = Path(extension.store_path)

    def on_disk() -> bool:
        cell = records_on_disk(store, session["fileId"]).get("cell-0") or {}
        return "# lab" in cell.get("input", "")

    try:
        await lab.join(room, session["sessionId"])
        await viewer.join(fork["fork_roomid"], fork["sessionId"])
        source = lab.ynb.ycells[0]["source"]
        source += "  # lab"
        seen = lambda: "# lab" in viewer.cells()[0][1]  # noqa: E731
        assert await first_sight_is_durable(seen, viewer.ynb.ydoc, on_disk)
    finally:
        await viewer.leave()
        await lab.leave()
    assert slow_log  # the slowed writer was on the path


async def test_history_needs_read_and_restoring_or_forking_needs_write(server, root_dir):
    await make_history(server, root_dir)
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    reader, writer = as_user(server, READ), as_user(server, *EVERYTHING)
    outsider = as_user(server, *(EVERYTHING - {READ}))
    try:
        assert (
            await outsider.http.get(
                "/api/collaboration/timeline/nb.ipynb?format=json&type=notebook"
            )
        ).status_code == 403
        data = await timeline(reader)
        fork = data["forkRoom"]
        assert (await undo_redo(reader, room, "undo", 1, fork)).json()["status"] == "undone"
        refused = await undo_redo(reader, room, "restore", 0, fork)
        assert refused.status_code == 403 and WRITE in refused.json()["message"]
        assert (await reader.http.put(f"/api/collaboration/fork/{room}")).status_code == 403
        assert (await reader.http.get(f"/api/collaboration/fork/{room}")).status_code == 200
        # the refused restore changed nothing
        assert [c[0] for c in await records(server)] == ["cell-0", "cell-2"]
        restored = await undo_redo(writer, room, "restore", 0, fork)
        assert restored.status_code == 200, restored.text
        # what the fork showed: version 2, cell-1 back
        assert [c[:2] for c in await records(server)] == [("cell-0", "a = 10"), ("cell-1", "b = 2")]
        bad = await writer.http.put(
            f"/api/collaboration/undo_redo/{room}?action=jump&forkRoom={fork}"
        )
        assert bad.status_code == 400
    finally:
        for user in (reader, writer, outsider):
            await user.aclose()


async def test_a_readers_edits_in_a_fork_are_dropped(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["a = 1"])
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    created = await server.http.put(f"/api/collaboration/fork/{room}", content="{}")
    fork = created.json()["fork_roomid"]
    reader_server, writer_server = as_user(server, READ), as_user(server, READ, WRITE)
    reader, writer = Tab(reader_server), Tab(writer_server)
    try:
        await reader.join(fork, session["sessionId"])
        await writer.join(fork, session["sessionId"])
        source = reader.ynb.ycells[0]["source"]
        source += "  # reader"
        source = writer.ynb.ycells[0]["source"]
        source += "  # writer"
        # the writer's edit reaches the reader; the reader's never reaches the writer
        await eventually(lambda: "# writer" in reader.cells()[0][1], reader.ynb.ydoc)
        assert "# reader" not in writer.cells()[0][1]
    finally:
        await reader.leave()
        await writer.leave()
        await reader_server.aclose()
        await writer_server.aclose()
    merged = await server.http.delete(f"/api/collaboration/fork/{fork}?merge=true")
    assert merged.status_code == 200
    assert [c[1] for c in await records(server)] == ["a = 1  # writer"]


@pytest.mark.slow  # two server starts
async def test_the_timeline_after_a_sigkill_and_a_restart_reads_the_log(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    config = {"CocalcSync": {"timeline_burst_seconds": 0}, "KernelPool": {"size": 0}}
    process = ServerProcess(root, tmp_path / "state", config=config)
    try:
        process.start()
        server = Server(process.url, process.token)
        await make_history(server, root)
        await server.aclose()
        process.restart()  # kill -9, then a new server on the same store
        server = Server(process.url, process.token)
        data = await timeline(server)
        assert data["versions"] == [1, 2, 3]
        session = await server.session("nb.ipynb")
        tab = Tab(server)
        try:
            await tab.join(data["forkRoom"], data["sessionId"])
            await undo_redo(
                server, f"json:notebook:{session['fileId']}", "undo", 2, data["forkRoom"]
            )
            await eventually(lambda: tab.cells()[0] == ("cell-0", "a = 1", ["one"]), tab.ynb.ydoc)
        finally:
            await tab.leave()
            await server.aclose()
    finally:
        process.kill()


async def test_timelines_nobody_joined_are_kept_up_to_a_limit_oldest_closed_first(
    server, root_dir, jp_serverapp
):
    from jupyter_cocalc_sync.history.service import MAX_UNATTENDED

    await make_history(server, root_dir)
    room = f"json:notebook:{(await server.session('nb.ipynb'))['fileId']}"
    forks = [(await timeline(server))["forkRoom"] for _ in range(MAX_UNATTENDED + 2)]
    history = jp_serverapp.web_app.settings["cocalc_sync"].history_service
    assert list(history.timelines) == forks[2:]
    assert (await undo_redo(server, room, "undo", 1, forks[0])).status_code == 404
    assert (await undo_redo(server, room, "undo", 1, forks[-1])).status_code == 200


async def test_a_save_asked_in_a_fork_room_fails_as_in_stock(server, root_dir):
    from jupyter_cocalc_sync.transport import protocol

    write_notebook(root_dir / "nb.ipynb", ["a = 1"])
    data = await timeline(server)
    url = server.ws_url(f"/api/collaboration/room/{data['forkRoom']}?sessionId={data['sessionId']}")
    async with aconnect_ws(url, server.http) as ws:
        await ws.send_bytes(b"\x02\x04save\x07")  # RAW "save", request 7 (JupyterLab's Ctrl+S)
        async with asyncio.timeout(15):  # unanswered, the tab's save would wait for ever
            while (message := protocol.decode(await ws.receive_bytes())).kind != protocol.RAW:
                pass
    assert json.loads(message.raw) == {"type": "save", "responseTo": 7, "status": "failed"}


@pytest.mark.cocalc(document_cleanup_delay=1, timeline_burst_seconds=0)
async def test_the_timeline_of_an_unloaded_notebook_reads_the_log(server, root_dir, jp_serverapp):
    await make_history(server, root_dir)
    documents = jp_serverapp.web_app.settings["cocalc_sync"].documents
    await poll(lambda: _closed(documents), timeout=30)
    data = await timeline(server)  # stock answers 404: no room
    assert len(data["timestamps"]) == 3
    session = await server.session("nb.ipynb")
    tab = Tab(server)
    try:
        await tab.join(data["forkRoom"], data["sessionId"])
        await undo_redo(server, f"json:notebook:{session['fileId']}", "undo", 2, data["forkRoom"])
        await eventually(lambda: tab.cells()[0] == ("cell-0", "a = 1", ["one"]), tab.ynb.ydoc)
    finally:
        await tab.leave()


async def _closed(documents) -> bool:
    return not documents.documents


async def test_a_step_squashed_away_meanwhile_shows_the_version_that_holds_it(
    server, root_dir, jp_serverapp
):
    await make_history(server, root_dir)
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    data = await timeline(server)
    assert data["versions"] == [1, 2, 3]
    # a run that ended squashes its versions: 2 and 3 become 3
    extension = jp_serverapp.web_app.settings["cocalc_sync"]
    assert await extension.history.squash_versions(session["fileId"], [2, 3]) == 1
    tab = Tab(server)
    try:
        await tab.join(data["forkRoom"], data["sessionId"])
        moved = await undo_redo(server, room, "undo", 1, data["forkRoom"])
        assert moved.status_code == 200 and moved.json()["status"] == "undone", moved.text
        await undo_redo(server, room, "undo", 1, data["forkRoom"])
        await eventually(lambda: [c[1] for c in tab.cells()] == ["a = 1", "b = 2"], tab.ynb.ydoc)
        restored = await undo_redo(server, room, "restore", 0, data["forkRoom"])
        assert restored.status_code == 200, restored.text
    finally:
        await tab.leave()
    assert [c[1] for c in await records(server)] == ["a = 1", "b = 2"]
