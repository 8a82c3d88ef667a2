"""A server killed with SIGKILL and restarted keeps every edit a client had seen, and takes
back a JupyterLab client that edited while it was down."""

from __future__ import annotations

import base64
import contextlib
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from helpers import Server, cell_sources, eventually, poll, write_notebook
from httpx_ws import aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Provider, Text
from pycrdt.websocket.websocket import HttpxWebsocket
from servers import ServerProcess

from jupyter_cocalc_sync.client import CocalcSyncClient


@pytest.fixture
def server_process(tmp_path, store_spec):
    """A server on each store backend in turn (SQLite in its state folder, or PostgreSQL)."""
    root = tmp_path / "root"
    root.mkdir()
    # autosave off for practical purposes: what survives comes from the change log
    config = {"autosave_delay": 3600}
    if store_spec.startswith("postgresql://"):
        config["store_url"] = store_spec
    proc = ServerProcess(root, tmp_path / "state", config={"CocalcSync": config})
    yield proc
    proc.kill()


async def test_sigkill_keeps_every_seen_edit_and_offline_edits_merge_without_duplicates(
    server_process,
):
    write_notebook(server_process.root / "crash.ipynb", ["one", "two"])
    server_process.start()
    srv = Server(server_process.url, server_process.token)
    client = CocalcSyncClient(srv.base_url, srv.token)
    live = await client.open("crash.ipynb")
    session = await srv.session("crash.ipynb")
    room = f"json:notebook:{session['fileId']}"
    url = srv.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    lab = YNotebook(Doc())
    async with aconnect_ws(url, srv.http) as ws:
        async with Provider(lab.ydoc, HttpxWebsocket(ws, room)):
            await eventually(lambda: cell_sources(lab) == ["one", "two"], lab.ydoc)
            source: Text = lab.ycells[0]["source"]
            source += " + lab 😀"
            for i in range(20):
                live.set(
                    {
                        "type": "cell",
                        "id": f"n{i}",
                        "input": f"cell {i} 日本",
                        "pos": 10 + i,
                        "cell_type": "code",
                    }
                )
                live.commit()
            # both clients have seen every edit
            await live.wait_for(
                lambda nb: nb.get_one({"type": "cell", "id": "cell-0"})["input"] == "one + lab 😀"
            )
            await eventually(lambda: len(lab.ycells) == 22, lab.ydoc)
        server_process.kill()
    await live.close()
    old_db = live.db
    old_lab_state = lab.ydoc.get_update()

    server_process.restart()
    # the store really is the one the test runs on
    url = server_process.config["CocalcSync"].get("store_url")
    expected = "store postgresql://" if url else f"store {server_process.state}"
    assert expected in server_process.log()
    srv2 = Server(server_process.url, server_process.token)
    reopened = (await srv2.http.get("/api/cocalc-sync/notebooks/crash.ipynb")).json()
    inputs = {r["id"]: r.get("input") for r in reopened["records"] if r["type"] == "cell"}
    assert inputs["cell-0"] == "one + lab 😀"
    assert all(inputs[f"n{i}"] == f"cell {i} 日本" for i in range(20))
    assert len(inputs) == 22

    # the SyncDB client reconnects with its old replica: nothing is duplicated
    client2 = CocalcSyncClient(srv2.base_url, srv2.token)
    live2 = await client2.open("crash.ipynb", db=old_db)
    assert len(live2.get({"type": "cell"})) == 22
    after = (await srv2.http.get("/api/cocalc-sync/notebooks/crash.ipynb")).json()
    assert len([r for r in after["records"] if r["type"] == "cell"]) == 22

    # the JupyterLab client comes back with its old session and Yjs state, plus an edit it
    # made while the server was down: the edit is merged, nothing is duplicated
    stale = YNotebook(Doc())
    stale.ydoc.apply_update(old_lab_state)
    offline: Text = stale.ycells[1]["source"]
    offline += " (offline)"
    url = srv2.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    async with aconnect_ws(url, srv2.http) as ws, Provider(stale.ydoc, HttpxWebsocket(ws, room)):
        await live2.wait_for(
            lambda nb: nb.get_one({"type": "cell", "id": "cell-1"})["input"] == "two (offline)"
        )
        await eventually(lambda: len(stale.ycells) == 22, stale.ydoc)
        assert cell_sources(stale)[:2] == ["one + lab 😀", "two (offline)"]
    after = (await srv2.http.get("/api/cocalc-sync/notebooks/crash.ipynb")).json()
    inputs = {r["id"]: r.get("input") for r in after["records"] if r["type"] == "cell"}
    assert len(inputs) == 22 and inputs["cell-1"] == "two (offline)"
    # a fresh JupyterLab load sees exactly the notebook, once
    fresh = await srv2.session("crash.ipynb")
    assert fresh["sessionId"] == session["sessionId"]  # the session outlives the process
    url = srv2.ws_url(f"/api/collaboration/room/{room}?sessionId={fresh['sessionId']}")
    lab2 = YNotebook(Doc())
    async with aconnect_ws(url, srv2.http) as ws, Provider(lab2.ydoc, HttpxWebsocket(ws, room)):
        await eventually(lambda: len(lab2.ycells) == 22, lab2.ydoc)
        assert cell_sources(lab2)[:2] == ["one + lab 😀", "two (offline)"]
    await client2.close()
    await client.close()
    await srv.aclose()
    await srv2.aclose()


def _notebook_with_outputs(path, cells: int) -> None:
    """Cells with metadata of many keys, a stream and an image (a blob in the table)."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8).decode()
    metadata = {f"key{n}": n for n in range(6)}
    write_notebook(
        path,
        [
            nbformat.v4.new_code_cell(
                f"print({i})",
                id=f"cell-{i}",
                metadata=metadata,
                execution_count=i + 1,
                outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text=f"line {i}\n" * 200),
                    nbformat.v4.new_output("display_data", {"image/png": png, "text/plain": "i"}),
                ],
            )
            for i in range(cells)
        ],
    )


def _projection_log_bytes(store: Path, file_id: str) -> tuple[int, list[tuple]]:
    """Bytes of the YNotebook's logged versions, and its base's row."""
    with contextlib.closing(sqlite3.connect(store)) as conn:
        doc = f"{file_id}#ynotebook"
        logged = conn.execute("SELECT SUM(LENGTH(data)) FROM changes WHERE doc = ?", (doc,))
        bases = conn.execute("SELECT source, source_version FROM bases WHERE doc = ?", (doc,))
        return logged.fetchone()[0] or 0, bases.fetchall()


async def test_a_notebook_first_opened_in_jupyterlab_is_restored_with_the_items_its_clients_hold(
    server_process,
):
    """Its YNotebook, built from the imported table, is not stored a second time: the store
    builds it again from the table after a restart, and a JupyterLab client holding the old
    state (with edits of cells, metadata and outputs made while the server was down) merges."""
    path = server_process.root / "first.ipynb"
    _notebook_with_outputs(path, 40)
    server_process.start()
    srv = Server(server_process.url, server_process.token)
    session = await srv.session("first.ipynb")  # JupyterLab opens it first
    file_id = session["fileId"]
    room = f"json:notebook:{file_id}"
    url = srv.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    lab = YNotebook(Doc())

    async def table_input(http, cell_id: str) -> str:
        answer = (await http.get("/api/cocalc-sync/notebooks/first.ipynb")).json()
        return next(r.get("input") for r in answer["records"] if r.get("id") == cell_id)

    async with aconnect_ws(url, srv.http) as ws, Provider(lab.ydoc, HttpxWebsocket(ws, room)):
        await eventually(lambda: len(lab.ycells) == 40, lab.ydoc)
        source: Text = lab.ycells[0]["source"]
        source += " + lab"
        await poll(lambda: _is(table_input(srv.http, "cell-0"), "print(0) + lab"))
    server_process.kill()
    if "store_url" not in server_process.config["CocalcSync"]:
        logged, bases = _projection_log_bytes(server_process.state / "cocalc.db", file_id)
        assert bases == [(file_id, 1)]
        assert logged < path.stat().st_size / 20  # (the whole YNotebook is about the file)
    old_lab_state = lab.ydoc.get_update()

    server_process.restart()
    srv2 = Server(server_process.url, server_process.token)
    stale = YNotebook(Doc())
    stale.ydoc.apply_update(old_lab_state)
    offline: Text = stale.ycells[1]["source"]
    offline += " (offline)"
    stale.ycells[2]["metadata"]["key3"] = "offline"
    stream: Text = stale.ycells[3]["outputs"][0]["text"]
    stream += "offline\n"
    url = srv2.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    async with aconnect_ws(url, srv2.http) as ws, Provider(stale.ydoc, HttpxWebsocket(ws, room)):
        # (a generous bound: the restart's first open starts the replay process and builds
        # the YNotebook again, on two shared cores)
        await poll(lambda: _is(table_input(srv2.http, "cell-1"), "print(1) (offline)"), 120)
    fresh = await srv2.session("first.ipynb")
    assert fresh["sessionId"] == session["sessionId"]
    url = srv2.ws_url(f"/api/collaboration/room/{room}?sessionId={fresh['sessionId']}")
    lab2 = YNotebook(Doc())
    async with aconnect_ws(url, srv2.http) as ws, Provider(lab2.ydoc, HttpxWebsocket(ws, room)):
        await eventually(lambda: lab2.get() == stale.get(), lab2.ydoc, timeout=60)
    cells = lab2.get()["cells"]
    assert len(cells) == 40 and cell_sources(lab2)[:2] == ["print(0) + lab", "print(1) (offline)"]
    assert cells[2]["metadata"]["key3"] == "offline"
    assert cells[3]["outputs"][0]["text"].endswith("line 3\noffline\n")
    assert cells[3]["outputs"][1]["data"]["image/png"]  # the image, inlined again
    answer = (await srv2.http.get("/api/cocalc-sync/notebooks/first.ipynb")).json()
    table = {r["id"]: r for r in answer["records"] if r["type"] == "cell"}
    assert len(table) == 40 and table["cell-2"]["metadata"]["key3"] == "offline"
    await srv.aclose()
    await srv2.aclose()


async def _is(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected
