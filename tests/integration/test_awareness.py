"""Awareness (cursors, user names): a client may set and remove only its own client ids."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import write_notebook
from httpx_ws import aconnect_ws

from jupyter_cocalc_sync.transport import protocol

ALICE, BOB = 111, 222


def awareness(*entries: tuple[int, int, object]) -> bytes:
    return protocol.awareness_message(
        protocol.encode_awareness(
            [(cid, clock, json.dumps(state)) for cid, clock, state in entries]
        )
    )


async def next_awareness(ws) -> list[protocol.AwarenessEntry]:
    async with asyncio.timeout(10):
        while True:
            message = protocol.decode(await ws.receive_bytes())
            if message.kind == protocol.AWARENESS:
                return protocol.decode_awareness(message.payload)


def joined_room(jp_serverapp, room_id: str, file_id: str):
    extension = jp_serverapp.web_app.settings["cocalc_sync"]
    if room_id in extension.rooms.transient:
        return extension.rooms.transient[room_id]
    return extension.notebooks.get(file_id).broadcast.rooms["notebook"]


@pytest.mark.parametrize("room", ["JupyterLab:globalAwareness", "json:notebook:{file_id}"])
async def test_a_client_cannot_set_or_remove_another_clients_awareness(
    server, root_dir, jp_serverapp, room
):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    session = await server.session("nb.ipynb")
    room_id = room.format(file_id=session["fileId"])
    url = server.ws_url(f"/api/collaboration/room/{room_id}?sessionId={session['sessionId']}")
    async with aconnect_ws(url, server.http) as alice:
        await alice.send_bytes(awareness((ALICE, 1, {"user": "alice"})))
        async with aconnect_ws(url, server.http) as bob:
            assert [e[0] for e in await next_awareness(bob)] == [ALICE]  # the others' states
            # Bob removes Alice's cursor, then takes her id, and announces his own
            await bob.send_bytes(awareness((ALICE, 2, None)))
            await bob.send_bytes(awareness((ALICE, 3, {"user": "mallory"}), (BOB, 1, {"u": "b"})))
            relayed = await next_awareness(alice)
            assert [entry[0] for entry in relayed] == [BOB]
            target = joined_room(jp_serverapp, room_id, session["fileId"])
            states = target.awareness.states
            assert states[ALICE] == {"user": "alice"} and BOB in states
        # Bob left: only his own id is removed
        removed = await next_awareness(alice)
        assert [(entry[0], entry[2]) for entry in removed] == [(BOB, "null")]
    assert target.refused_awareness == 2
