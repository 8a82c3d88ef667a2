"""Bounded memory per client: a room client that stops reading is closed once its send queue
passes ``send_queue_bytes``; frames and bodies past their limits are refused."""

from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import urlsplit

import pytest
from helpers import eventually, poll, upgrade_to_websocket, write_notebook
from httpx_ws import WebSocketDisconnect, aconnect_ws

from jupyter_cocalc_sync.client import CocalcSyncClient
from jupyter_cocalc_sync.transport import protocol

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
#: seconds a client's reconnection may take: only a hang is slower
RECONNECTED = 60


async def never_reading_client(server, path: str) -> tuple[asyncio.StreamReader, object]:
    """A websocket client that completes the handshake and then reads nothing at all."""
    url = urlsplit(server.ws_url(path))
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    await upgrade_to_websocket(server, url, reader, writer)
    return reader, writer


def extension(jp_serverapp):
    return jp_serverapp.web_app.settings["cocalc_sync"]


async def syncdb_room(server, root_dir) -> tuple[str, str]:
    """The websocket URL of a new notebook's ``syncdb`` room, and its file id."""
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    file_id = (await server.http.get(NB, params={"records": "false"})).json()["file_id"]
    return server.ws_url(f"/api/cocalc-sync/room/syncdb:{file_id}"), file_id


@pytest.mark.cocalc(send_queue_bytes=256 * 1024)
async def test_a_client_that_stops_reading_is_closed_and_the_others_go_on(
    server, root_dir, jp_serverapp
):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    file_id = (await server.http.get(NB, params={"records": "false"})).json()["file_id"]
    _reader, writer = await never_reading_client(server, f"/api/cocalc-sync/room/syncdb:{file_id}")
    room = extension(jp_serverapp).notebooks.get(file_id).broadcast.rooms["syncdb"]
    (slow,) = room.peers
    good_client = CocalcSyncClient(server.base_url, server.token)
    good = await good_client.open("nb.ipynb")
    # edits, far more than the socket buffers and the queue limit hold
    size = 200_000
    edits = 0
    while slow in room.peers:
        text = os.urandom(size // 2).hex()  # all new: the update carries all of it
        body = {"set": [{"type": "cell", "id": "cell-0", "input": text}]}
        assert (await server.http.post(NB + "/records", json=body)).status_code == 200
        edits += 1
        assert edits < 500, f"never closed; {slow.queued_bytes} bytes queued"
    print(f"closed after {edits} edits of {size} bytes")
    assert len(room.peers) == 1 and slow.queued_bytes <= 256 * 1024 + 2 * size
    # the good client keeps receiving
    await server.http.post(
        NB + "/records", json={"set": [{"type": "cell", "id": "cell-0", "input": "done"}]}
    )
    await good.wait_for(lambda nb: nb.get_one({"type": "cell", "id": "cell-0"})["input"] == "done")
    writer.close()
    await good_client.close()


async def test_the_close_reason_says_the_client_may_reconnect(server, root_dir, jp_serverapp):
    from jupyter_cocalc_sync.handlers.rooms import SLOW_CLIENT_REASON, TRY_AGAIN_LATER

    url, file_id = await syncdb_room(server, root_dir)
    async with aconnect_ws(url, server.http) as ws:
        await ws.receive_bytes()
        (peer,) = extension(jp_serverapp).notebooks.get(file_id).broadcast.rooms["syncdb"].peers
        peer.queued_bytes = extension(jp_serverapp).send_queue_bytes  # as if it fell behind
        await server.http.post(
            NB + "/records", json={"set": [{"type": "cell", "id": "cell-0", "input": "x = 2"}]}
        )
        with pytest.raises(WebSocketDisconnect) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.receive_bytes()
    assert closed.value.code == TRY_AGAIN_LATER
    assert json.loads(closed.value.reason) == json.loads(SLOW_CLIENT_REASON)


async def test_the_python_client_reconnects_and_exchanges_what_either_side_missed(
    server, root_dir, jp_serverapp, live
):
    from jupyter_cocalc_sync.handlers.rooms import SLOW_CLIENT_REASON, TRY_AGAIN_LATER

    write_notebook(root_dir / "nb.ipynb", ["x = 1", "y = 1"])
    nb = await live("nb.ipynb")
    room = extension(jp_serverapp).notebooks.get(nb.file_id).broadcast.rooms["syncdb"]
    (first,) = room.peers
    first.close(TRY_AGAIN_LATER, SLOW_CLIENT_REASON)  # as when it falls behind
    await eventually(lambda: nb.closed_reason, timeout=RECONNECTED)
    assert nb.closed_reason.startswith(f"{TRY_AGAIN_LATER}: ") and nb.syncing
    # a change of each side, made whether or not the replica is back yet
    nb.set({"type": "cell", "id": "cell-0", "input": "x = 'mine'"})
    nb.commit()
    response = await server.http.post(
        NB + "/records", json={"set": [{"type": "cell", "id": "cell-1", "input": "y = 'theirs'"}]}
    )
    assert response.status_code == 200
    await nb.wait_for(
        lambda nb: nb.get_one({"type": "cell", "id": "cell-1"})["input"] == "y = 'theirs'",
        timeout=RECONNECTED,
    )

    async def on_server() -> bool:
        records = (await server.http.get(NB)).json()["records"]
        return any(r["id"] == "cell-0" and r["input"] == "x = 'mine'" for r in records)

    await poll(on_server, timeout=RECONNECTED)
    assert len(room.peers) == 1 and first not in room.peers


async def test_the_python_client_does_not_reconnect_after_a_close_that_says_no(
    server, root_dir, jp_serverapp, live
):
    from jupyter_cocalc_sync.handlers.rooms import NOT_FOUND

    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    nb = await live("nb.ipynb")
    room = extension(jp_serverapp).notebooks.get(nb.file_id).broadcast.rooms["syncdb"]
    (peer,) = room.peers
    peer.close(NOT_FOUND, "the notebook is gone")
    await eventually(lambda: not nb.syncing, timeout=RECONNECTED)
    assert nb.closed_reason == f"{NOT_FOUND}: the notebook is gone" and not room.peers


@pytest.mark.cocalc(max_frame_bytes=64 * 1024, max_body_bytes=64 * 1024)
async def test_oversized_frames_and_bodies_are_refused(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    big = {"set": [{"type": "cell", "id": "cell-0", "input": "y" * 100_000}]}
    response = await server.http.post(NB + "/records", json=big)
    assert response.status_code == 413 and "max_body_bytes" in response.json()["message"]
    file_id = (await server.http.get(NB, params={"records": "false"})).json()["file_id"]
    url = server.ws_url(f"/api/cocalc-sync/room/syncdb:{file_id}")
    async with aconnect_ws(url, server.http) as ws:
        await ws.receive_bytes()
        await ws.send_bytes(protocol.sync_message(protocol.SYNC_UPDATE, b"\x00" * 100_000))
        with pytest.raises(WebSocketDisconnect) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.receive_bytes()
    assert closed.value.code == 1009
    records = (await server.http.get(NB)).json()["records"]
    assert next(r for r in records if r.get("id") == "cell-0")["input"] == "x = 1"


async def test_a_message_the_network_takes_at_once_is_not_counted_as_queued(
    server, root_dir, jp_serverapp
):
    url, file_id = await syncdb_room(server, root_dir)
    async with aconnect_ws(url, server.http) as ws:
        await ws.receive_bytes()
        (peer,) = extension(jp_serverapp).notebooks.get(file_id).broadcast.rooms["syncdb"].peers
        message = protocol.sync_message(protocol.SYNC_UPDATE, b"\x00\x00")  # (no change)
        peer.send(message)
        # no loop turn since: the socket took it in the call, nothing waits for the network
        assert peer.queued_bytes == 0 and not peer.writing
        while await ws.receive_bytes() != message:
            pass


async def test_a_message_to_a_room_client_runs_no_task_of_its_own(server, root_dir, jp_serverapp):
    # tornado's write_message makes a task per message, run a loop turn later: for every peer
    # of every broadcast
    url, file_id = await syncdb_room(server, root_dir)
    async with aconnect_ws(url, server.http) as ws:
        await ws.receive_bytes()
        (peer,) = extension(jp_serverapp).notebooks.get(file_id).broadcast.rooms["syncdb"].peers
        message = protocol.sync_message(protocol.SYNC_UPDATE, b"\x00\x00")  # (no change)
        before = asyncio.all_tasks()
        peer.send(message)
        assert asyncio.all_tasks() == before
        while await ws.receive_bytes() != message:
            pass
