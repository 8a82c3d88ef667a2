"""Live notebook documents: YNotebook (JupyterLab) clients, SyncDB clients and REST together."""

from __future__ import annotations

import asyncio
import json

import nbformat
import pytest
from helpers import (
    cell_ids,
    cell_sources,
    eventually,
    read_notebook_file,
    replace_file,
    write_notebook,
)
from pycrdt import Map, Text

from jupyter_cocalc_sync.client import CocalcSyncClient

EDITS = ["x = '😀'", "名前 = 'テスト'", "e\u0301 = 1  # combining", "שלום"]


async def test_edits_reach_every_kind_of_client_exactly(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2"])
    client = CocalcSyncClient(server.base_url, server.token)
    live = await client.open("nb.ipynb")
    async with server.ynotebook("nb.ipynb") as lab1, server.ynotebook("nb.ipynb") as lab2:
        assert cell_sources(lab1) == cell_sources(lab2) == ["a = 1", "b = 2"]

        # JupyterLab user 1 types (emoji, CJK, combining characters)
        source: Text = lab1.ycells[0]["source"]
        for text in EDITS:
            source += "\n" + text
        expected = "a = 1\n" + "\n".join(EDITS)
        await eventually(lambda: cell_sources(lab2)[0] == expected, lab2.ydoc)
        await live.wait_for(
            lambda nb: nb.get_one({"type": "cell", "id": "cell-0"})["input"] == expected
        )

        # SyncDB client edits in the middle of a string with emoji
        live.set({"type": "cell", "id": "cell-0", "input": expected.replace("😀", "😀🎉")})
        live.commit()
        expected = expected.replace("😀", "😀🎉")
        await eventually(lambda: cell_sources(lab1)[0] == expected, lab1.ydoc)
        await eventually(lambda: cell_sources(lab2)[0] == expected, lab2.ydoc)

        # JupyterLab user 2 inserts a cell between the two
        lab2.ycells.insert(
            1,
            lab2.create_ycell(
                {"id": "new", "cell_type": "markdown", "source": "# 見出し", "metadata": {}}
            ),
        )
        await eventually(lambda: cell_ids(lab1) == ["cell-0", "new", "cell-1"], lab1.ydoc)
        record = await live.wait_for(lambda nb: nb.get_one({"type": "cell", "id": "new"}))
        assert record["cell_type"] == "markdown" and record["input"] == "# 見出し"
        positions = {r["id"]: r["pos"] for r in live.get({"type": "cell"})}
        assert positions["cell-0"] < positions["new"] < positions["cell-1"]

        # SyncDB client moves cell-1 to the top and changes metadata
        live.set(
            {
                "type": "cell",
                "id": "cell-1",
                "pos": positions["cell-0"] - 1,
                "tags": {"setup": True},
            }
        )
        live.commit()
        await eventually(lambda: cell_ids(lab1) == ["cell-1", "cell-0", "new"], lab1.ydoc)
        await eventually(lambda: cell_ids(lab2) == ["cell-1", "cell-0", "new"], lab2.ydoc)
        assert lab2.ycells[0]["metadata"]["tags"] == ["setup"]

        # JupyterLab user 1 moves a cell (delete + insert, as the frontend does) and edits metadata
        moved = lab1.ycells[2].to_py()
        with lab1.ydoc.transaction():
            del lab1.ycells[2]
            lab1.ycells.insert(0, lab1.create_ycell(moved))
        lab1.ycells[1]["metadata"]["collapsed"] = True
        await eventually(lambda: cell_ids(lab2) == ["new", "cell-1", "cell-0"], lab2.ydoc)
        await live.wait_for(
            lambda nb: (
                sorted(nb.get({"type": "cell"}), key=lambda r: r["pos"])[0]["id"] == "new"
                and nb.get_one({"type": "cell", "id": "cell-1"}).get("collapsed") is True
            )
        )
        assert len(live.get({"type": "cell"})) == 3  # a move is not a delete and a new cell

        # deletes, from both kinds of client
        del lab2.ycells[0]
        await live.wait_for(lambda nb: nb.get_one({"type": "cell", "id": "new"}) is None)
        live.delete({"type": "cell", "id": "cell-1"})
        live.commit()
        await eventually(lambda: cell_ids(lab1) == ["cell-0"], lab1.ydoc)
        await eventually(lambda: cell_ids(lab2) == ["cell-0"], lab2.ydoc)

        # notebook metadata from JupyterLab
        lab1.ydoc.get("meta", type=Map)["metadata"]["custom"] = {"k": "v"}
        await live.wait_for(
            lambda nb: (
                nb.get_one({"type": "settings", "id": "main"})["metadata"].get("custom")
                == {"k": "v"}
            )
        )

    # the file on disk matches the live document after the autosave delay, and validates
    def on_disk():
        nb = read_notebook_file(root_dir / "nb.ipynb")
        return nb if nb is not None and [c.source for c in nb.cells] == [expected] else None

    nb = await eventually(on_disk, timeout=10)
    nbformat.validate(nb)
    assert nb.metadata["custom"] == {"k": "v"}
    await client.close()


async def test_rest_records_and_history(server, root_dir):
    write_notebook(root_dir / "dir with space" / "ñotebook.ipynb", ["1 + 1"])
    http = server.http
    url = "/api/cocalc-sync/notebooks/dir%20with%20space/%C3%B1otebook.ipynb"
    opened = (await http.get(url)).json()
    assert opened["path"] == "dir with space/ñotebook.ipynb"
    session = await server.session("dir%20with%20space/%C3%B1otebook.ipynb")
    assert session["fileId"] == opened["file_id"]
    v1 = (
        await http.post(
            url + "/records", json={"set": [{"type": "cell", "id": "cell-0", "input": "2 + 2"}]}
        )
    ).json()["version"]
    v2 = (
        await http.post(
            url + "/records",
            json={
                "set": [{"type": "cell", "id": "z", "input": "new", "pos": 5, "cell_type": "code"}],
                "delete": [{"type": "cell", "id": "cell-0"}],
            },
        )
    ).json()["version"]
    assert v2 > v1 > opened["version"]
    # a bad record changes nothing
    bad = await http.post(
        url + "/records",
        json={
            "set": [
                {"type": "cell", "id": "z", "input": "ok"},
                {"type": "cell", "id": "y", "pos": "nope"},
            ]
        },
    )
    assert bad.status_code == 400 and "pos" in bad.json()["message"]
    now = (await http.get(url)).json()
    assert now["version"] == v2
    assert {r["id"]: r.get("input") for r in now["records"] if r["type"] == "cell"} == {"z": "new"}
    history = (await http.get(url + "/history")).json()["versions"]
    assert [v["version"] for v in history][-2:] == [v1, v2]
    old = (await http.get(url + f"/history/{v1}")).json()
    assert {r["id"]: r.get("input") for r in old["records"] if r["type"] == "cell"} == {
        "cell-0": "2 + 2"
    }
    assert (await http.get(url + "/history/9999")).status_code == 404
    reverted = (await http.post(url + "/revert", json={"version": v1})).json()["version"]
    assert reverted > v2
    now = (await http.get(url)).json()
    assert {r["id"]: r.get("input") for r in now["records"] if r["type"] == "cell"} == {
        "cell-0": "2 + 2"
    }
    exported = await http.get(url + "/export", params={"to": "ipynb"})
    nb = nbformat.reads(exported.text, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat_minor == 5 and nb.cells[0].id == "cell-0"
    html = await http.get(url + "/export", params={"to": "html"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    unknown = await http.get(url + "/export", params={"to": "nonsense"})
    assert unknown.status_code == 400 and "nonsense" in unknown.json()["message"]


async def test_rest_records_come_settings_first_then_cells_in_notebook_order(server, root_dir):
    # ids whose sorted order is not the notebook's ("cell-10" < "cell-2"), in a table whose
    # iteration order is its hash map's
    write_notebook(root_dir / "order.ipynb", [f"x = {i}" for i in range(30)])
    url = "/api/cocalc-sync/notebooks/order.ipynb"
    in_file = [f"cell-{i}" for i in range(30)]

    def order(records: list[dict]) -> list[str]:
        return [r["id"] if r["type"] == "cell" else r["type"] for r in records]

    opened = (await server.http.get(url)).json()
    assert order(opened["records"]) == ["settings", *in_file]
    last = max(r["pos"] for r in opened["records"] if r["type"] == "cell")
    moved = {"type": "cell", "id": "cell-0", "pos": last + 1}
    version = (await server.http.post(url + "/records", json={"set": [moved]})).json()["version"]
    now = (await server.http.get(url)).json()
    assert order(now["records"]) == ["settings", *in_file[1:], "cell-0"]
    then = (await server.http.get(url + f"/history/{opened['version']}")).json()
    assert order(then["records"]) == ["settings", *in_file]
    assert now["version"] == version


async def test_out_of_band_change_merges_with_a_live_edit(server, root_dir, cocalc_config):
    path = root_dir / "oob.ipynb"
    write_notebook(path, ["first", "second", "third"])
    async with server.ynotebook("oob.ipynb") as lab:
        # a collaborator edits the third cell (saved or not, it must survive)
        source: Text = lab.ycells[2]["source"]
        source += " (live edit)"  # on a local name: ycell["source"] += … would replace the Text
        client = CocalcSyncClient(server.base_url, server.token)
        live = await client.open("oob.ipynb")
        await live.wait_for(
            lambda nb: nb.get_one({"type": "cell", "id": "cell-2"})["input"].endswith("(live edit)")
        )
        # meanwhile the file changes on disk: a new cell, a changed cell (git pull)
        nb = await eventually(lambda: read_notebook_file(path))
        nb.cells[0].source = "first (from disk)"
        nb.cells.insert(1, nbformat.v4.new_markdown_cell("inserted on disk", id="disk-new"))
        replace_file(path, nbformat.writes(nb))
        await eventually(
            lambda: (
                cell_sources(lab)
                == ["first (from disk)", "inserted on disk", "second", "third (live edit)"]
            ),
            lab.ydoc,
        )

        # and the merged notebook is saved back
        def merged_on_disk():
            nb = read_notebook_file(path)
            return nb is not None and [c.source for c in nb.cells] == [
                "first (from disk)",
                "inserted on disk",
                "second",
                "third (live edit)",
            ]

        await eventually(merged_on_disk, timeout=10)
        await client.close()


async def test_session_id_mismatch_is_refused_with_a_reloadable_reason(server, root_dir):
    from httpx_ws import WebSocketDisconnect, aconnect_ws

    write_notebook(root_dir / "s.ipynb", ["x"])
    session = await server.session("s.ipynb")
    url = server.ws_url(
        f"/api/collaboration/room/json:notebook:{session['fileId']}?sessionId=stale"
    )
    async with aconnect_ws(url, server.http) as ws:
        try:
            await ws.receive_bytes()
            raise AssertionError("the stale session was accepted")
        except WebSocketDisconnect as e:
            assert e.code == 1003
            assert json.loads(e.reason) == {
                "reason": "unknown_session",
                "sessionId": "stale",
                "reloadable": True,
            }


async def test_plain_files_open_in_collaboration_rooms(server, root_dir):
    from httpx_ws import aconnect_ws
    from jupyter_ydoc import YUnicode
    from pycrdt import Doc, Provider
    from pycrdt.websocket.websocket import HttpxWebsocket

    (root_dir / "script.py").write_text("print('hi')\n")
    response = await server.http.put(
        "/api/collaboration/session/script.py",
        content=json.dumps({"format": "text", "type": "file"}),
    )
    session = response.json()
    room = f"text:file:{session['fileId']}"
    doc = YUnicode(Doc())
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    async with aconnect_ws(url, server.http) as ws, Provider(doc.ydoc, HttpxWebsocket(ws, room)):
        await eventually(lambda: doc.get() == "print('hi')\n", doc.ydoc)
        doc.set("print('edited')\n")
        await eventually(
            lambda: (root_dir / "script.py").read_text() == "print('edited')\n", timeout=10
        )
    missing = await server.http.put(
        "/api/collaboration/session/nope.py", content=json.dumps({"format": "text", "type": "file"})
    )
    assert missing.status_code == 404


async def test_save_message_and_hash_follow_the_stock_protocol(server, root_dir):
    """The frontend's Ctrl+S: RAW "save" answered "success" (also when nothing changed), and
    the document's state carries the saved file's hash (else JupyterLab says "File Changed")."""
    from httpx_ws import aconnect_ws
    from pycrdt import Decoder, Doc, Encoder

    from jupyter_cocalc_sync.transport import protocol

    write_notebook(root_dir / "h.ipynb", ["x = 1"])
    session = await server.session("h.ipynb")
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    doc = Doc()
    async with aconnect_ws(url, server.http) as ws:
        replies = []
        for save_id in (7, 8):  # the second save has nothing new to write
            encoder = Encoder()
            encoder.write_var_uint(protocol.RAW)
            encoder.write_var_string("save")
            encoder.write_var_uint(save_id)
            await ws.send_bytes(encoder.to_bytes())
            while True:
                frame = await ws.receive_bytes()
                message = protocol.decode(frame)
                if message.kind == protocol.SYNC and message.sub != protocol.SYNC_STEP1:
                    doc.apply_update(message.payload)
                if message.kind == protocol.RAW:
                    replies.append(json.loads(Decoder(frame[1:]).read_var_string()))
                    break
        assert replies == [
            {"type": "save", "responseTo": 7, "status": "success"},
            {"type": "save", "responseTo": 8, "status": "success"},
        ]
        model = (
            await server.http.get("/api/contents/h.ipynb", params={"content": 0, "hash": 1})
        ).json()

        def state_hash():
            return doc.get("state", type=Map).get("hash") == model["hash"]

        await ws.send_bytes(protocol.sync_message(protocol.SYNC_STEP1, doc.get_state()))
        async with asyncio.timeout(10):
            while not state_hash():
                message = protocol.decode(await ws.receive_bytes())
                if message.kind == protocol.SYNC and message.sub != protocol.SYNC_STEP1:
                    doc.apply_update(message.payload)


# an autosave under way when the file is renamed: jupyter_server's contents manager logs the
# failed write; the autosave gives up quietly and the rename is followed
@pytest.mark.expect_errors(r"Error while saving file: old name\.ipynb")
async def test_a_renamed_notebook_keeps_its_id_history_and_live_edits(server, root_dir):
    write_notebook(root_dir / "old name.ipynb", ["x = 1"])
    client = CocalcSyncClient(server.base_url, server.token)
    live = await client.open("old name.ipynb")
    live.set({"type": "cell", "id": "cell-0", "input": "x = 2"})
    live.commit()
    before = (await server.http.get("/api/cocalc-sync/notebooks/old%20name.ipynb")).json()
    (root_dir / "sub").mkdir()
    renamed = await server.http.patch(
        "/api/contents/old%20name.ipynb", json={"path": "sub/new name.ipynb"}
    )
    assert renamed.status_code == 200
    after = (await server.http.get("/api/cocalc-sync/notebooks/sub/new%20name.ipynb")).json()
    assert after["file_id"] == before["file_id"]
    history = (
        await server.http.get("/api/cocalc-sync/notebooks/sub/new%20name.ipynb/history")
    ).json()
    assert len(history["versions"]) >= 2
    live.set({"type": "cell", "id": "cell-0", "input": "x = 3"})
    live.commit()

    def saved_at_new_path():
        nb = read_notebook_file(root_dir / "sub" / "new name.ipynb")
        return nb is not None and nb.cells[0].source == "x = 3"

    await eventually(saved_at_new_path, timeout=10)
    assert not (root_dir / "old name.ipynb").exists()
    await client.close()


async def test_a_deleted_file_keeps_its_live_notebook_and_an_edit_brings_it_back(server, root_dir):
    path = root_dir / "gone.ipynb"
    write_notebook(path, ["keep = 1"])
    url = "/api/cocalc-sync/notebooks/gone.ipynb"
    assert (await server.http.get(url)).status_code == 200
    path.unlink()
    still = await server.http.get(url)
    assert still.status_code == 200  # the open notebook (and its history) is not lost
    edit = {"set": [{"type": "cell", "id": "cell-0", "input": "keep = 2"}]}
    assert (await server.http.post(url + "/records", json=edit)).status_code == 200

    def recreated():
        nb = read_notebook_file(path)
        return nb is not None and nb.cells[0].source == "keep = 2"

    await eventually(recreated, timeout=10)


@pytest.mark.cocalc(document_cleanup_delay=0.1)
async def test_a_jupyterlab_client_back_after_the_unload_keeps_its_offline_edits(
    server, root_dir, jp_serverapp
):
    from helpers import poll, read_notebook_file
    from httpx_ws import aconnect_ws
    from jupyter_ydoc import YNotebook
    from pycrdt import Doc, Provider
    from pycrdt.websocket.websocket import HttpxWebsocket

    documents = jp_serverapp.web_app.settings["cocalc_sync"].documents
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2"])
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    lab = YNotebook(Doc())
    async with aconnect_ws(url, server.http) as ws, Provider(lab.ydoc, HttpxWebsocket(ws, room)):
        await eventually(lambda: cell_sources(lab) == ["a = 1", "b = 2"], lab.ydoc)
    # offline: the tab types and adds a cell while the server unloads the notebook
    source: Text = lab.ycells[0]["source"]
    source += "  # typed offline"
    lab.ycells.append(
        lab.create_ycell({"id": "offline", "cell_type": "code", "source": "c = 3", "metadata": {}})
    )

    async def unloaded() -> bool:
        return session["fileId"] not in documents.documents

    await poll(unloaded)
    again = await server.session("nb.ipynb")
    assert again["sessionId"] == session["sessionId"]  # the same session: no reload asked
    expected = ["a = 1  # typed offline", "b = 2", "c = 3"]
    async with (
        aconnect_ws(url, server.http) as ws,
        Provider(lab.ydoc, HttpxWebsocket(ws, room)),
        server.ynotebook("nb.ipynb") as other,
    ):
        await eventually(lambda: cell_sources(other) == expected, other.ydoc)
        await eventually(lambda: cell_sources(lab) == expected, lab.ydoc)

    def saved() -> bool:
        nb = read_notebook_file(root_dir / "nb.ipynb")
        return nb is not None and [c.source for c in nb.cells] == expected

    await eventually(saved)


async def test_a_yNotebook_built_in_steps_catches_up_with_changes_made_meanwhile(monkeypatch):
    from jupyter_cocalc_sync.format.ipynb import sorted_cells
    from jupyter_cocalc_sync.format.schema import notebook_syncdb
    from jupyter_cocalc_sync.origin import SERVER
    from jupyter_cocalc_sync.ynotebook import writer as ynotebook_writer
    from jupyter_cocalc_sync.ynotebook.projection import YNotebookProjection

    monkeypatch.setattr(ynotebook_writer, "BUILD_STEP", 3)
    db = notebook_syncdb()
    for i in range(20):
        db.set(
            {"type": "cell", "id": f"c{i}", "input": f"x = {i}", "pos": i, "cell_type": "code"},
            SERVER,
        )
    db.commit(SERVER)

    edits: list[int] = []

    async def edit_meanwhile() -> None:
        for i in range(5):
            edits.append(i)
            await asyncio.sleep(0)  # between two build steps
            db.set({"type": "cell", "id": f"c{i * 4}", "input": f"edited {i}"}, SERVER)
            db.delete({"type": "cell", "id": f"c{i * 4 + 1}"}, SERVER)
            db.set({"type": "cell", "id": f"n{i}", "input": "new", "pos": i + 0.5}, SERVER)
            db.commit(SERVER)

    editing = asyncio.ensure_future(edit_meanwhile())
    projection = await YNotebookProjection.built_in_steps(db)
    assert edits, "the table changed while the YNotebook was being built"
    await editing
    expected = [(r["id"], r["input"]) for r in sorted_cells(db.get())]
    assert [(c["id"], str(c["source"])) for c in projection.ycells] == expected
    db.set(
        {"type": "cell", "id": "c2", "input": "after"}, SERVER
    )  # and it follows the table from now on
    db.commit(SERVER)
    assert (
        str(projection.ycells[[c["id"] for c in projection.ycells].index("c2")]["source"])
        == "after"
    )
    projection.close()
