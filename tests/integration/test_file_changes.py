"""Live documents under changes to their files: touched, rewritten, merged, deleted, renamed."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from helpers import eventually, poll, read_notebook_file, replace_file, write_notebook
from jupyter_server.utils import ensure_async

from jupyter_cocalc_sync.client import CocalcSyncClient
from jupyter_cocalc_sync.documents.following import stamp_of
from jupyter_cocalc_sync.origin import SERVER
from jupyter_cocalc_sync.outputs.handler import is_marker

#: seconds a file change, its merge and the save that follows may take: only a hang is slower
#: (merging a changed file is a few reads, parses and writes on worker threads, which a
#: loaded machine can delay by several seconds each)
SETTLE = 60


def extension(jp_serverapp):
    return jp_serverapp.web_app.settings["cocalc_sync"]


async def checked(jp_serverapp, document) -> None:
    """Wait until the server saved everything and has looked at the file as it is now."""
    cm = jp_serverapp.contents_manager

    async def seen():
        model = await ensure_async(cm.get(document.path, content=False))
        saved = document.notebook_file.saved_version == await document.table.durable()
        return saved and document.files.stamp == stamp_of(model)

    await poll(seen, timeout=SETTLE)


def reordered(value):
    """The same JSON with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


async def opened(jp_serverapp, path: str):
    """The live document of ``path``, kept open for the test (as a connected client would)."""
    documents = extension(jp_serverapp).documents
    document = await documents.get(path)
    documents.hold(document)
    return document


def cell(document, cell_id: str) -> dict:
    return document.db.get_one({"type": "cell", "id": cell_id})


FLOOD = "".join(f"line {i}\n" for i in range(5000))


def flood_cell() -> dict:
    return nbformat.v4.new_code_cell(
        "for i in range(5000): print('line', i)",
        id="flood",
        outputs=[nbformat.v4.new_output("stream", name="stdout", text=FLOOD)],
    )


def truncated(document) -> bool:
    """The flood cell shows at most ``max_output_length`` (2000) and the marker."""
    output = cell(document, "flood")["output"]
    visible = json.dumps(output, separators=(",", ":"))  # the marker may pass the limit
    return len(visible) <= 2100 and any(is_marker(o) for o in output.values())


@pytest.mark.cocalc(max_output_length=2000)
async def test_touch_same_content_and_reordered_keys_change_nothing(server, root_dir, jp_serverapp):
    path = root_dir / "same.ipynb"
    write_notebook(path, ["a = 1", nbformat.v4.new_code_cell(flood_cell().source, id="flood")])
    document = await opened(jp_serverapp, "same.ipynb")
    await document.apply([{"type": "cell", "id": "cell-0", "input": "a = 10"}], origin=SERVER)
    # a flood from the kernel: truncated in the document, re-inlined in the file
    run = await server.http.post(
        "/api/cocalc-sync/notebooks/same.ipynb/run", json={"cell_ids": ["flood"]}
    )
    assert run.is_success
    await eventually(lambda: cell(document, "flood").get("state") == "idle", timeout=60)
    assert truncated(document)

    def saved_with_the_flood():
        nb = read_notebook_file(path)
        return nb is not None and "".join(o.get("text", "") for o in nb.cells[1].outputs) == FLOOD

    await eventually(saved_with_the_flood, timeout=SETTLE)
    await checked(jp_serverapp, document)
    version, records = document.version, document.records()
    saved = path.read_text()

    stat = path.stat()
    os.utime(path, (stat.st_atime + 10, stat.st_mtime + 10))  # touch
    await checked(jp_serverapp, document)
    replace_file(path, saved)  # git checkout of the same content: a new file
    await checked(jp_serverapp, document)
    # another tool saves the same notebook with its keys in another order
    replace_file(path, json.dumps(reordered(json.loads(saved)), indent=4))
    await checked(jp_serverapp, document)

    assert document.version == version
    assert document.records() == records
    assert truncated(document)


@pytest.mark.cocalc(max_output_length=2000)
async def test_a_flood_stays_truncated_across_merges_and_a_live_edit_is_kept(
    server, root_dir, jp_serverapp
):
    path = root_dir / "flood.ipynb"
    flood = FLOOD
    write_notebook(path, [flood_cell(), "other = 1", "edited_live = 1"])
    document = await opened(jp_serverapp, "flood.ipynb")

    assert truncated(document)  # the import went through the limits
    await document.apply(
        [{"type": "cell", "id": "cell-2", "input": "edited_live = 2"}], origin=SERVER
    )
    for n in range(3):
        await eventually(lambda: read_notebook_file(path) is not None, timeout=SETTLE)
        await checked(jp_serverapp, document)
        nb = read_notebook_file(path)
        # the saved file holds the whole flood (the overflow is re-inlined)
        assert "".join(o.get("text", "") for o in nb.cells[0].outputs) == flood
        nb.cells[1].source = f"other = {n + 2}"
        replace_file(path, nbformat.writes(nb))
        await eventually(
            lambda n=n: cell(document, "cell-1")["input"] == f"other = {n + 2}", timeout=SETTLE
        )
        assert truncated(document)
        assert cell(document, "cell-2")["input"] == "edited_live = 2"

    # outputs changed on disk by another tool go through the limits too
    await checked(jp_serverapp, document)
    nb = read_notebook_file(path)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=flood * 2)]
    replace_file(path, nbformat.writes(nb))
    more = "/api/cocalc-sync/notebooks/flood.ipynb/cells/flood/more_output"

    async def overflow_has_the_new_output():
        reply = (await server.http.get(more)).json()
        overflow = "".join(m.get("text", "") for m in reply["messages"])
        return len(overflow) > len(flood)  # the doubled flood, past the visible part

    await poll(overflow_has_the_new_output, timeout=SETTLE)
    assert truncated(document)


@pytest.mark.parametrize("edit_during", [False, True])
async def test_a_notebook_replaced_on_disk_is_merged_and_saved_in_place(
    server, root_dir, jp_serverapp, edit_during
):
    path = root_dir / "replaced.ipynb"
    write_notebook(path, ["a = 1", "b = 2", "c = 3"])
    document = await opened(jp_serverapp, "replaced.ipynb")
    await checked(jp_serverapp, document)
    if edit_during:
        await document.apply(
            [{"type": "cell", "id": "cell-2", "input": "c = 'live'"}], origin=SERVER
        )
    # another tool writes a new version: one cell changed, one deleted, one added
    write_notebook(
        root_dir / "new.ipynb",
        [
            nbformat.v4.new_code_cell("a = 'disk'", id="cell-0"),
            nbformat.v4.new_code_cell("c = 3", id="cell-2"),
            nbformat.v4.new_markdown_cell("added on disk", id="added"),
        ],
    )
    os.replace(root_dir / "new.ipynb", path)
    expected = ["a = 'disk'", "c = 'live'" if edit_during else "c = 3", "added on disk"]

    def sources():
        return [c["input"] for c in sorted(document.db.get({"type": "cell"}), key=_pos)]

    await eventually(lambda: sources() == expected, timeout=SETTLE)
    await extension(jp_serverapp).documents.close_document(document.file_id)
    assert sorted(p.name for p in root_dir.glob("*.ipynb")) == ["replaced.ipynb"]
    assert [c.source for c in read_notebook_file(path).cells] == expected


def _pos(record: dict) -> float:
    return record["pos"]


async def deleted_through_api(server, path: str) -> None:
    assert (await server.http.delete(f"/api/contents/{path}")).status_code == 204


# an autosave under way when the file is deleted: jupyter_server's contents manager logs the
# failed write (it cannot lock the file against its own delete); the autosave gives up quietly
@pytest.mark.expect_errors(r"Error while saving file: del\.ipynb")
@pytest.mark.parametrize("edit_after", [False, True])
async def test_a_deleted_notebook_stays_deleted_unless_edited(
    server, root_dir, jp_serverapp, edit_after
):
    path = root_dir / "del.ipynb"
    write_notebook(path, ["x = 1"])
    ext = extension(jp_serverapp)
    document = await opened(jp_serverapp, "del.ipynb")
    await document.apply([{"type": "cell", "id": "cell-0", "input": "x = 2"}], origin=SERVER)
    await eventually(
        lambda: (read_notebook_file(path) or {}).get("cells", [{}])[0].get("source") == "x = 2",
        timeout=SETTLE,
    )
    await deleted_through_api(server, "del.ipynb")
    await poll(lambda: _true(document.files.deleted is not None))
    if edit_after:
        await document.apply([{"type": "cell", "id": "cell-0", "input": "x = 3"}], origin=SERVER)
    await ext.documents.close_document(document.file_id)
    assert document.closed
    if edit_after:
        assert read_notebook_file(path).cells[0].source == "x = 3"
    else:
        assert not path.exists()
    assert sorted(p.name for p in root_dir.glob("*.ipynb")) == (["del.ipynb"] if edit_after else [])


async def _true(value):
    return value


@pytest.mark.parametrize("edit_during", [False, True])
async def test_a_renamed_notebook_is_saved_at_its_new_path_only(
    server, root_dir, jp_serverapp, edit_during
):
    write_notebook(root_dir / "a.ipynb", ["x = 1"])
    ext = extension(jp_serverapp)
    client = CocalcSyncClient(server.base_url, server.token)
    live = await client.open("a.ipynb")
    live.set({"type": "cell", "id": "cell-0", "input": "x = 2"})
    live.commit()
    if edit_during:  # an edit not yet saved when the file moves
        live.set({"type": "cell", "id": "cell-0", "input": "x = 3"})
        live.commit()
    moved = await server.http.patch("/api/contents/a.ipynb", json={"path": "b.ipynb"})
    assert moved.status_code == 200
    live.set({"type": "cell", "id": "cell-0", "input": "x = 4"})
    live.commit()
    document = ext.documents.documents[ext.documents.file_id("b.ipynb")]
    await eventually(lambda: cell(document, "cell-0")["input"] == "x = 4", timeout=SETTLE)
    await client.close()
    await ext.documents.close_document(document.file_id)
    assert sorted(p.name for p in root_dir.glob("*.ipynb")) == ["b.ipynb"]
    assert read_notebook_file(root_dir / "b.ipynb").cells[0].source == "x = 4"


# -- plain files ------------------------------------------------------------------------------


async def test_a_plain_file_follows_disk_changes_and_keeps_live_edits(server, root_dir):
    path = root_dir / "script.py"
    path.write_text("one = 1\ntwo = 2\nthree = 3\n")
    async with server.yfile("script.py") as text:
        source = text._ysource
        source.insert(0, "# live\n")  # a live edit on the first line
        replace_file(path, "one = 1\ntwo = 2\nthree = 'from disk'\n")
        await eventually(
            lambda: text.get() == "# live\none = 1\ntwo = 2\nthree = 'from disk'\n",
            text.ydoc,
            timeout=SETTLE,
        )
        await eventually(
            lambda: path.read_text() == "# live\none = 1\ntwo = 2\nthree = 'from disk'\n",
            timeout=SETTLE,
        )
        stat = path.stat()
        os.utime(path, (stat.st_atime + 10, stat.st_mtime + 10))  # touch: nothing changes
        replace_file(path, path.read_text())
        path.write_text(path.read_text().replace("two = 2", "two = 'again'"))
        await eventually(lambda: "two = 'again'" in text.get(), text.ydoc, timeout=SETTLE)
        assert text.get().count("\n") == 4


@pytest.mark.parametrize("edit_after", [False, True])
async def test_a_deleted_plain_file_stays_deleted_unless_edited(
    server, root_dir, jp_serverapp, edit_after
):
    path = root_dir / "gone.py"
    path.write_text("x = 1\n")
    async with server.yfile("gone.py") as text:
        await deleted_through_api(server, "gone.py")
        document = next(iter(extension(jp_serverapp).file_rooms.documents.values()))
        await poll(lambda: _true(document.files.deleted is not None))
        if edit_after:
            text._ysource.insert(0, "# edited after the deletion\n")
            await eventually(lambda: path.exists(), timeout=SETTLE)
    await extension(jp_serverapp).file_rooms.close_all()
    if edit_after:
        assert path.read_text() == "# edited after the deletion\nx = 1\n"
    else:
        assert not path.exists()


async def test_a_renamed_plain_file_is_saved_at_its_new_path_only(server, root_dir, jp_serverapp):
    (root_dir / "a.py").write_text("x = 1\n")
    async with server.yfile("a.py") as text:
        moved = await server.http.patch("/api/contents/a.py", json={"path": "b.py"})
        assert moved.status_code == 200
        text._ysource.insert(0, "# after the rename\n")
        await eventually(
            lambda: (root_dir / "b.py").read_text() == "# after the rename\nx = 1\n", timeout=SETTLE
        )
    await extension(jp_serverapp).file_rooms.close_all()
    assert sorted(p.name for p in root_dir.glob("*.py")) == ["b.py"]
    assert (root_dir / "b.py").read_text() == "# after the rename\nx = 1\n"


async def test_changes_made_while_no_server_runs_are_compared_with_the_last_save(tmp_path):
    """After a restart the saved version is exported again to tell what the file changed."""
    from helpers import Server
    from servers import ServerProcess

    root = tmp_path / "root"
    root.mkdir()
    config = {
        "CocalcSync": {"max_output_length": 2000, "autosave_delay": 0.2},
        "KernelPool": {"size": 0},  # no kernel starting while the server stops
    }
    proc = ServerProcess(root, tmp_path / "state", config=config)
    path = root / "down.ipynb"
    write_notebook(path, [flood_cell(), "other = 1"])
    url = "/api/cocalc-sync/notebooks/down.ipynb"

    async def notebook(srv):
        reply = (await srv.http.get(url)).json()
        cells = {r["id"]: r for r in reply["records"] if r["type"] == "cell"}
        return reply["version"], cells

    def shows_truncated(cells):
        output = cells["flood"]["output"]
        visible = json.dumps(output, separators=(",", ":"))
        return len(visible) <= 2100 and any(is_marker(o) for o in output.values())

    try:
        proc.start()
        srv = Server(proc.url, proc.token)
        edit = {"set": [{"type": "cell", "id": "cell-1", "input": "other = 2"}]}
        assert (await srv.http.post(url + "/records", json=edit)).status_code == 200
        await eventually(lambda: _source(path, 1) == "other = 2", timeout=SETTLE)
        version, cells = await notebook(srv)
        await srv.aclose()
        proc.stop()

        # while no server runs: touched, then rewritten with reordered keys
        stat = path.stat()
        os.utime(path, (stat.st_atime + 10, stat.st_mtime + 10))
        replace_file(path, json.dumps(reordered(json.loads(path.read_text())), indent=3))
        proc.start()
        srv = Server(proc.url, proc.token)
        assert await notebook(srv) == (version, cells)
        await srv.aclose()
        proc.stop()

        # and edited: the edit is merged, the flood stays truncated
        nb = read_notebook_file(path)
        nb.cells[1].source = "other = 3"
        replace_file(path, nbformat.writes(nb))
        proc.start()
        srv = Server(proc.url, proc.token)
        _, cells = await notebook(srv)
        assert cells["cell-1"]["input"] == "other = 3" and shows_truncated(cells)
        await srv.aclose()
    finally:
        proc.kill()


def _source(path, index: int) -> str | None:
    nb = read_notebook_file(path)
    return nb.cells[index].source if nb is not None else None
