"""Errors at the boundary: the package's own errors are 4xx, anything else a logged 500 with a
request id, and a panic of pycrdt (not an ``Exception``) never hangs a request or a room."""

from __future__ import annotations

import asyncio
import logging

import pytest
from helpers import write_notebook
from httpx_ws import WebSocketDisconnect, aconnect_ws
from pycrdt import Doc, Map

from jupyter_cocalc_sync.transport import protocol

NB = "/api/cocalc-sync/notebooks/nb.ipynb"


def extension(jp_serverapp):
    return jp_serverapp.web_app.settings["cocalc_sync"]


def panic() -> None:
    """Makes pycrdt panic for real (pyo3's PanicException derives from BaseException)."""
    Doc().get("m", type=Map)["x"] = 2**70


@pytest.mark.parametrize(
    "body",
    [
        {"set": [{"type": "cell", "id": "cell-0", "exec_count": 2**53 + 1}]},
        {"set": [{"type": "cell", "id": "cell-0", "metadata": {"n": -(2**53) - 1}}]},
        {"set": [{"type": "cell", "id": "cell-0", "output": {"0": {"data": [2**70]}}}]},
        {"delete": [42]},
        {"set": [{"type": "settings", "id": "main", "output": {"type": {}}}]},
        {"set": [{"type": "other", "id": "x", "output": {"not-an-index": {}}}]},
        {"set": ["a record that is a string"]},
    ],
)
async def test_bad_records_are_400_and_change_nothing(server, root_dir, body):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    before = (await server.http.get(NB)).json()
    response = await server.http.post(NB + "/records", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "InvalidRecordError"
    after = (await server.http.get(NB)).json()
    assert after["records"] == before["records"] and after["version"] == before["version"]


async def test_safe_integers_at_the_limit_are_kept(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    body = {"set": [{"type": "cell", "id": "cell-0", "metadata": {"n": 2**53, "m": -(2**53)}}]}
    assert (await server.http.post(NB + "/records", json=body)).status_code == 200
    records = (await server.http.get(NB)).json()["records"]
    metadata = next(r for r in records if r.get("id") == "cell-0")["metadata"]
    assert metadata["n"] == 2**53 and metadata["m"] == -(2**53)


async def test_an_unknown_export_format_is_400(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    response = await server.http.get(NB + "/export", params={"to": "nope"})
    assert response.status_code == 400 and "nope" in response.json()["message"]


@pytest.mark.parametrize("failure", [LookupError("a bug"), ValueError("a bug"), "panic"])
@pytest.mark.expect_errors(r"\[request\]: (LookupError|ValueError|InternalCrashError)", r"500 GET ")
async def test_unexpected_errors_are_a_logged_500_with_a_request_id(
    server, root_dir, jp_serverapp, monkeypatch, caplog, failure
):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])

    async def broken(document, to):
        if failure == "panic":
            panic()
        raise failure

    monkeypatch.setattr(extension(jp_serverapp).exporter, "export", broken)
    with caplog.at_level(logging.ERROR):
        response = await asyncio.wait_for(server.http.get(NB + "/export"), 30)
    assert response.status_code == 500
    request_id = response.json()["request_id"]
    assert request_id in response.json()["message"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    # the server still answers
    assert (await server.http.get(NB)).status_code == 200


@pytest.mark.expect_errors(r"\[room\.crdt_panic\]: PanicException")
async def test_a_panic_in_a_room_closes_only_that_peer(server, root_dir, jp_serverapp):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    file_id = (await server.http.get(NB, params={"records": "false"})).json()["file_id"]
    url = server.ws_url(f"/api/cocalc-sync/room/syncdb:{file_id}")
    async with aconnect_ws(url, server.http) as ws:
        await ws.receive_bytes()
        room = extension(jp_serverapp).notebooks.get(file_id).broadcast.rooms["syncdb"]
        room._apply = lambda update, peer: panic()
        await ws.send_bytes(protocol.sync_message(protocol.SYNC_UPDATE, Doc().get_update()))
        with pytest.raises(WebSocketDisconnect) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.receive_bytes()
    assert closed.value.code == 1007
    assert (await server.http.get(NB)).status_code == 200
