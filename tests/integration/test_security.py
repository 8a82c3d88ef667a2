"""Every route is authenticated, paths stay in the root, bad frames close one connection."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
from helpers import poll, write_notebook
from httpx_ws import WebSocketDisconnect, aconnect_ws

from jupyter_cocalc_sync.client import CocalcSyncClient

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
HTTP_ROUTES = [
    ("GET", NB),
    ("POST", NB + "/records"),
    ("GET", NB + "/history"),
    ("GET", NB + "/history/1"),
    ("POST", NB + "/revert"),
    ("GET", NB + "/export"),
    ("GET", "/api/cocalc-sync/kernels"),
    ("PUT", "/api/collaboration/session/nb.ipynb"),
]


@pytest.mark.parametrize(("method", "route"), HTTP_ROUTES)
async def test_unauthenticated_requests_get_a_json_refusal(server, root_dir, method, route):
    write_notebook(root_dir / "nb.ipynb", ["x"])
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        response = await anonymous.request(
            method, route, json={"format": "json", "type": "notebook"}
        )
    assert response.status_code in (401, 403)
    assert response.headers["content-type"].startswith("application/json")
    assert "message" in response.json()


@pytest.mark.parametrize(
    "room", ["/api/cocalc-sync/room/syncdb:x", "/api/collaboration/room/json:notebook:x"]
)
async def test_unauthenticated_websocket_handshakes_are_refused(server, room):
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        with pytest.raises(Exception) as refused:
            async with aconnect_ws(server.ws_url(room), anonymous):
                pass
    assert "403" in str(refused.value) or "401" in str(refused.value)


@pytest.mark.parametrize(
    "path",
    [
        "../outside.ipynb",
        "%2e%2e/outside.ipynb",
        "sub/%2E%2E/%2e%2e/outside.ipynb",
        "%2Fetc%2Fpasswd.ipynb",
        "link/secret.ipynb",
    ],
)
async def test_paths_that_leave_the_root_are_rejected(server, root_dir, tmp_path, path):
    outside = tmp_path / "outside-root"
    outside.mkdir(exist_ok=True)
    write_notebook(outside / "secret.ipynb", ["TOPSECRET-CONTENT"])
    write_notebook(tmp_path / "outside.ipynb", ["TOPSECRET-CONTENT"])
    (root_dir / "sub").mkdir(exist_ok=True)
    if not (root_dir / "link").exists():
        os.symlink(outside, root_dir / "link")
    for method, url, body in [
        ("GET", f"/api/cocalc-sync/notebooks/{path}", None),
        ("POST", f"/api/cocalc-sync/notebooks/{path}/records", {"set": []}),
        ("PUT", f"/api/collaboration/session/{path}", {"format": "json", "type": "notebook"}),
    ]:
        response = await server.http.request(
            method, url, content=json.dumps(body) if body else None
        )
        assert 400 <= response.status_code < 500, (method, url, response.status_code)
        assert "TOPSECRET-CONTENT" not in response.text


async def test_missing_notebook_and_session_are_404(server):
    assert (await server.http.get("/api/cocalc-sync/notebooks/missing.ipynb")).status_code == 404
    response = await server.http.put(
        "/api/collaboration/session/missing.ipynb",
        content=json.dumps({"format": "json", "type": "notebook"}),
    )
    assert response.status_code == 404 and "message" in response.json()


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x07\x05abc",  # unknown sync message type
        b"\x00\x02\xff\xff\xff\xff\x0f",  # update longer than the frame
        b"\x00\x02\x03\x01\x02\x03",  # an update that is not a Yjs update
        b"\x09",  # unknown message type
        "a text frame",
    ],
)
async def test_a_malformed_frame_closes_only_that_connection(server, root_dir, frame):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    good = CocalcSyncClient(server.base_url, server.token)
    live = await good.open("nb.ipynb")
    before = (await server.http.get(NB)).json()
    file_id = before["file_id"]
    url = server.ws_url(f"/api/cocalc-sync/room/syncdb:{file_id}")
    async with aconnect_ws(url, server.http) as ws:
        await ws.receive_bytes()  # the server's sync step 1
        if isinstance(frame, str):
            await ws.send_text(frame)
        else:
            await ws.send_bytes(frame)
        with pytest.raises(WebSocketDisconnect) as closed:
            async with asyncio.timeout(10):  # closed at once; 10 s only detects a hang
                while True:
                    await ws.receive_bytes()
    assert closed.value.code in (1003, 1007)
    after = (await server.http.get(NB)).json()
    assert after["records"] == before["records"] and after["version"] == before["version"]
    # the other client keeps working
    live.set({"type": "cell", "id": "cell-0", "input": "x = 2"})
    live.commit()

    async def arrived():
        now = (await server.http.get(NB)).json()
        return any(r.get("input") == "x = 2" for r in now["records"])

    await poll(arrived)
    await good.close()


async def test_websockets_set_tcp_nodelay(server, root_dir, jp_serverapp):
    """Rooms and (through the package's config) kernel channels send small frames at once."""
    import gc
    import socket

    from tornado.websocket import WebSocketHandler

    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    file_id = (await server.http.get(NB, params={"records": "false"})).json()["file_id"]
    kernel = (await server.http.post("/api/kernels", json={})).json()
    rooms = server.ws_url(f"/api/cocalc-sync/room/syncdb:{file_id}")
    channels = server.ws_url(f"/api/kernels/{kernel['id']}/channels")
    async with aconnect_ws(rooms, server.http) as room_ws, aconnect_ws(channels, server.http):
        await room_ws.receive_bytes()
        handlers = [
            o
            for o in gc.get_objects()
            if isinstance(o, WebSocketHandler) and o.ws_connection is not None
        ]
        kinds = {type(h).__name__: h for h in handlers}
        assert {"RoomHandler", "KernelWebsocketHandler"} <= set(kinds)
        for handler in kinds.values():
            sock = handler.ws_connection.stream.socket
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), type(handler).__name__
