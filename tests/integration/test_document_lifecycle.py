"""Documents open and close once, end what they started, and open what JupyterLab opens."""

from __future__ import annotations

import asyncio
import json
import shutil

import nbformat
import pytest
from helpers import poll, read_notebook_file, write_notebook
from httpx_ws import aconnect_ws
from pycrdt import Doc

from jupyter_cocalc_sync.documents.lifecycle import DocumentState
from jupyter_cocalc_sync.format.repair import REPAIRED_KEY
from jupyter_cocalc_sync.origin import SERVER
from jupyter_cocalc_sync.transport import protocol


def extension(jp_serverapp):
    return jp_serverapp.web_app.settings["cocalc_sync"]


async def test_a_notebook_requested_while_it_closes_opens_again_only_after_the_close(
    server, root_dir, jp_serverapp
):
    write_notebook(root_dir / "race.ipynb", ["x = 1"])
    documents = extension(jp_serverapp).documents
    first = await documents.get("race.ipynb")
    await first.apply(
        [{"type": "cell", "id": "cell-0", "input": "x = 2"}], origin=SERVER
    )  # to save at close
    closing = documents.close_document(first.file_id)
    assert documents.state(first.file_id) == DocumentState.CLOSING
    requests = [asyncio.ensure_future(documents.get("race.ipynb")) for _ in range(3)]
    reopened = await asyncio.gather(*requests)
    assert closing.done() and first.closed  # the first copy had saved and closed
    assert all(d is reopened[0] for d in reopened) and reopened[0] is not first
    assert documents.state(first.file_id) == DocumentState.OPEN
    assert list(documents.documents.values()) == [reopened[0]]
    assert reopened[0].db.get_one({"type": "cell", "id": "cell-0"})["input"] == "x = 2"
    assert read_notebook_file(root_dir / "race.ipynb").cells[0].source == "x = 2"


async def test_the_awareness_room_answers_the_sync_like_stock(server):
    url = server.ws_url("/api/collaboration/room/JupyterLab:globalAwareness")
    async with aconnect_ws(url, server.http) as ws:
        await ws.send_bytes(protocol.sync_message(protocol.SYNC_STEP1, Doc().get_state()))
        async with asyncio.timeout(10):
            while True:
                message = protocol.decode(await ws.receive_bytes())
                if message.kind == protocol.SYNC and message.sub == protocol.SYNC_STEP2:
                    break
        Doc().apply_update(message.payload)  # a valid (empty) update


async def test_a_kernel_started_for_a_rest_only_notebook_ends_when_the_notebook_closes(
    server, root_dir, jp_serverapp
):
    write_notebook(root_dir / "rest.ipynb", ["print('hi')"])
    write_notebook(root_dir / "lab.ipynb", ["print('hi')"])
    # lab.ipynb has a session that JupyterLab started: never ours to end
    lab = await server.http.post(
        "/api/sessions",
        json={
            "path": "lab.ipynb",
            "name": "lab.ipynb",
            "type": "notebook",
            "kernel": {"name": "python3"},
        },
    )
    assert lab.status_code == 201
    for path in ("rest.ipynb", "lab.ipynb"):
        url = f"/api/cocalc-sync/notebooks/{path}"
        assert (await server.http.post(url + "/run", json={"cell_ids": ["cell-0"]})).is_success

        async def ran(url=url):
            records = (await server.http.get(url)).json()["records"]
            cell = next(r for r in records if r.get("id") == "cell-0")
            return cell.get("state") == "idle" and "0" in (cell.get("output") or {})

        await poll(ran, timeout=60)
    sessions = {s["path"]: s for s in (await server.http.get("/api/sessions")).json()}
    rest_kernel = sessions["rest.ipynb"]["kernel"]["id"]
    documents = extension(jp_serverapp).documents
    for path in ("rest.ipynb", "lab.ipynb"):
        document = await documents.get(path)
        await documents.close_document(document.file_id)

    sessions = {s["path"] for s in (await server.http.get("/api/sessions")).json()}
    kernels = {k["id"] for k in (await server.http.get("/api/kernels")).json()}
    assert sessions == {"lab.ipynb"}
    assert rest_kernel not in kernels


# -- notebooks that are not quite valid --------------------------------------------------------

VALID_CELL = {
    "cell_type": "code",
    "id": "valid",
    "metadata": {"tags": ["keep"]},
    "source": "x = 1\nprint(x)",
    "execution_count": 3,
    "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
}


def invalid_notebook() -> dict:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"display_name": "Python 3"}},
        "cells": [
            VALID_CELL,
            {"cell_type": "heading", "level": 2, "id": "head", "metadata": {}, "source": "Title"},
            {"cell_type": "markdown", "id": "nosource", "metadata": {}},
            {
                "cell_type": "code",
                "id": "bad id!",
                "metadata": {},
                "source": "y = 2",
                "outputs": [{"output_type": "hologram", "beam": 1}],
                "execution_count": None,
            },
            {"cell_type": "raw", "id": "valid", "metadata": {}, "source": "duplicate id"},
        ],
    }


@pytest.mark.filterwarnings("ignore::nbformat.warnings.DuplicateCellId")  # the file before the save
async def test_an_invalid_notebook_opens_repaired_and_reports_it(server, root_dir):
    path = root_dir / "invalid.ipynb"
    path.write_text(json.dumps(invalid_notebook()))
    url = "/api/cocalc-sync/notebooks/invalid.ipynb"
    reply = await server.http.get(url)
    assert reply.status_code == 200, reply.text
    records = reply.json()["records"]
    settings = next(r for r in records if r["type"] == "settings")
    warning = settings["load_warning"]
    for problem in ("heading", "no source", "bad id!", "hologram", "duplicate id", "kernelspec"):
        assert problem in warning
    cells = sorted((r for r in records if r["type"] == "cell"), key=lambda r: r["pos"])
    assert cells[1]["cell_type"] == "markdown" and cells[1]["input"] == "## Title"

    # an edit makes the next save, which writes a valid notebook
    edit = {"set": [{"type": "cell", "id": "nosource", "input": "now with a source"}]}
    assert (await server.http.post(url + "/records", json=edit)).status_code == 200

    async def saved():
        nb = read_notebook_file(path)
        done = nb is not None and nb.cells[2].get("source") == "now with a source"
        return nb if done else None

    nb = await poll(saved, timeout=10)
    nbformat.validate(nb)
    valid = nb.cells[0]
    assert valid.id == "valid" and valid.source == VALID_CELL["source"]
    assert valid.metadata == VALID_CELL["metadata"] and valid.execution_count == 3
    assert valid.outputs == [nbformat.from_dict(VALID_CELL["outputs"][0])]
    kept = nb.cells[3].outputs[0].metadata[REPAIRED_KEY]["output"]
    assert kept == {"output_type": "hologram", "beam": 1}  # nothing is dropped
    assert nb.metadata[REPAIRED_KEY]["kernelspec"] == {"display_name": "Python 3"}
    assert len({c.id for c in nb.cells}) == 5


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"cells": 3, "nbformat": 4}',
        "[]",
        # found by tests/stress/test_fuzz.py: a boolean is not a format version (True == 1)
        '{"cells": [{"cell_type": "markdown"}], "nbformat": true}',
        '{"cells": [{"cell_type": "markdown"}], "nbformat": 1}',  # v1 knows code and text
        '{"cells": [], "nbformat": "4"}',
    ],
)
async def test_a_file_that_is_not_a_notebook_is_refused(server, root_dir, text):
    (root_dir / "broken.ipynb").write_text(text)
    reply = await server.http.get("/api/cocalc-sync/notebooks/broken.ipynb")
    assert reply.status_code == 422 and "not a valid notebook" in reply.json()["message"]


def cut_off_save(path):
    """What a crash in the middle of jupyter_server's atomic save leaves: the file from before
    the save as ``.~<name>``, the file itself truncated."""
    shutil.copy2(path, path.with_name(".~" + path.name))
    path.write_bytes(b"")


async def test_a_save_cut_off_by_a_crash_opens_the_file_from_before_it(server, root_dir):
    path = root_dir / "cut.ipynb"
    write_notebook(path, ["x = 1"])
    cut_off_save(path)
    reply = await server.http.get("/api/cocalc-sync/notebooks/cut.ipynb")
    assert reply.status_code == 200, reply.text
    cells = [r for r in reply.json()["records"] if r["type"] == "cell"]
    assert [c["input"] for c in cells] == ["x = 1"]
    assert read_notebook_file(path).cells[0].source == "x = 1"
    assert (root_dir / "cut.ipynb.invalid").read_bytes() == b""  # the broken file, kept aside
    assert not (root_dir / ".~cut.ipynb").exists()


async def test_a_save_cut_off_by_a_crash_reopens_with_the_notebooks_history(
    server, root_dir, jp_serverapp
):
    path = root_dir / "cut.ipynb"
    write_notebook(path, ["x = 1"])
    documents = extension(jp_serverapp).documents
    first = await documents.get("cut.ipynb")
    await first.apply([{"type": "cell", "id": "cell-0", "input": "x = 2"}], origin=SERVER)
    await documents.close_document(first.file_id)  # saved at close
    cut_off_save(path)
    reopened = await documents.get("cut.ipynb")
    assert reopened.db.get_one({"type": "cell", "id": "cell-0"})["input"] == "x = 2"
    assert read_notebook_file(path).cells[0].source == "x = 2"
