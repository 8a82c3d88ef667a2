"""The stock timeline slider's calls (jupyter-docprovider's ``TimelineSliderComponent``):
``GET …/timeline``, the tab's document moved into the fork room, ``PUT …/undo_redo`` to move
through history and to restore — served from the change log, outputs included."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import nbformat
import pytest
from helpers import Server, eventually, poll, read_notebook_file, write_notebook
from httpx_ws import aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Provider
from pycrdt.websocket.websocket import HttpxWebsocket

NB = "/api/cocalc-sync/notebooks/nb.ipynb"

pytestmark = pytest.mark.cocalc(timeline_burst_seconds=0)


class Tab:
    """A JupyterLab tab's ``WebSocketProvider``: one YNotebook that ``connectToForkDoc`` moves
    into a fork's room and ``reconnect`` moves back into the notebook's. Each connection runs
    in a task of its own (a provider's task group must end in the task that began it)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.ynb = YNotebook(Doc())
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def join(self, room: str, session_id: str) -> None:
        await self.leave()
        url = self.server.ws_url(f"/api/collaboration/room/{room}?sessionId={session_id}")
        synced = asyncio.Event()
        self._stop = stop = asyncio.Event()

        async def connected() -> None:
            async with (
                aconnect_ws(url, self.server.http) as ws,
                Provider(self.ynb.ydoc, HttpxWebsocket(ws, room)) as provider,
            ):
                await provider.synced.wait()
                synced.set()
                await stop.wait()

        self._task = task = asyncio.create_task(connected())
        waiter = asyncio.ensure_future(synced.wait())
        async with asyncio.timeout(15):
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # raises why it ended

    async def leave(self) -> None:
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None

    def cells(self) -> list[tuple[str, str, list[str]]]:
        return cells_of(self.ynb.ydoc)


def cells_of(ydoc: Doc) -> list[tuple[str, str, list[str]]]:
    """(id, source, stream texts) of each cell of a YNotebook."""
    cells = YNotebook(ydoc).get()["cells"]
    return [
        (c["id"], c["source"], [o.get("text", "") for o in c.get("outputs", [])]) for c in cells
    ]


def record_cells(records: list[dict]) -> list[tuple[str, str, list[str]]]:
    cells = sorted((r for r in records if r["type"] == "cell"), key=lambda r: (r["pos"], r["id"]))
    return [
        (
            c["id"],
            c.get("input", ""),
            [o.get("text", "") for _, o in sorted((c.get("output") or {}).items())],
        )
        for c in cells
    ]


def stream(text: str) -> dict:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


async def make_history(server: Server, root_dir) -> None:
    """v1: the file (cell-0 printed "one"); v2: cell-0 changed and printed "ten"; v3: cell-1
    deleted, cell-2 added."""
    first = nbformat.v4.new_code_cell("a = 1", id="cell-0", outputs=[stream("one")])
    write_notebook(root_dir / "nb.ipynb", [first, nbformat.v4.new_code_cell("b = 2", id="cell-1")])
    for body in (
        {"set": [{"type": "cell", "id": "cell-0", "input": "a = 10", "output": {"0": TEN}}]},
        {
            "set": [{"type": "cell", "id": "cell-2", "input": "c = 3", "pos": 5}],
            "delete": [{"type": "cell", "id": "cell-1"}],
        },
    ):
        (await server.http.post(NB + "/records", content=json.dumps(body))).raise_for_status()


TEN = stream("ten")
V1 = [("cell-0", "a = 1", ["one"]), ("cell-1", "b = 2", [])]
V2 = [("cell-0", "a = 10", ["ten"]), ("cell-1", "b = 2", [])]
V3 = [("cell-0", "a = 10", ["ten"]), ("cell-2", "c = 3", [])]


async def timeline(server: Server, path: str = "nb.ipynb") -> dict:
    # the URL exactly as requestDocumentTimeline builds it
    url = f"/api/collaboration/timeline/{path}?format=json&&type=notebook"
    response = await server.http.get(url)
    assert response.status_code == 200, response.text
    return response.json()


async def undo_redo(server: Server, room: str, action: str, steps: int, fork: str):
    # as requestUndoRedo builds it: the room id URI-encoded, the query joined with "&&"
    return await server.http.put(
        f"/api/collaboration/undo_redo/{quote(room, safe='')}"
        f"?action={action}&&steps={steps}&&forkRoom={fork}"
    )


async def test_the_slider_shows_old_versions_with_outputs_and_restores_one(server, root_dir):
    await make_history(server, root_dir)
    versions = (await server.http.get(NB + "/history")).json()["versions"]
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    tab, other = Tab(server), Tab(server)
    try:
        await tab.join(room, session["sessionId"])
        await other.join(room, session["sessionId"])
        assert tab.cells() == V3

        data = await timeline(server)
        assert data["roomId"] == room
        assert data["sessionId"] == session["sessionId"]
        assert data["timestamps"] == [v["time"] for v in versions]
        assert data["versions"] == [v["version"] for v in versions]
        assert len(data["authors"]) == len(versions)

        # connectToForkDoc: the same document, now in the fork's room
        await tab.join(data["forkRoom"], data["sessionId"])
        assert tab.cells() == V3
        reply = await undo_redo(server, room, "undo", 2, data["forkRoom"])
        assert reply.status_code == 200 and reply.json()["status"] == "undone", reply.text
        await eventually(lambda: tab.cells() == V1, tab.ynb.ydoc)
        reply = await undo_redo(server, room, "redo", 1, data["forkRoom"])
        assert reply.json()["status"] == "redone"
        await eventually(lambda: tab.cells() == V2, tab.ynb.ydoc)
        assert other.cells() == V3  # only the tab looks at history
        await undo_redo(server, room, "undo", 1, data["forkRoom"])
        await eventually(lambda: tab.cells() == V1, tab.ynb.ydoc)

        reply = await undo_redo(server, room, "restore", 0, data["forkRoom"])
        assert reply.json()["code"] == 200, reply.text
        # the other tab follows at once
        await eventually(lambda: other.cells() == V1, other.ynb.ydoc)
        # provider.reconnect(): the tab's document, fork items and all, back in the notebook
        await tab.join(room, session["sessionId"])
        tab.ynb.append_cell({"cell_type": "code", "id": "marker", "source": "m"})
        expected = [*V1, ("marker", "m", [])]

        async def server_has_marker() -> bool:
            records = (await server.http.get(NB)).json()["records"]
            return any(r["id"] == "marker" for r in records if r["type"] == "cell")

        await poll(server_has_marker)  # sent after the tab's own sync: the server has it all
        records = (await server.http.get(NB)).json()["records"]
        assert [c[:2] for c in record_cells(records)] == [c[:2] for c in expected]
        assert record_cells(records)[0][2] == ["one"]
        await eventually(lambda: other.cells() == expected, other.ynb.ydoc)
        assert tab.cells() == expected
        fresh = Tab(server)
        await fresh.join(room, session["sessionId"])
        assert fresh.cells() == expected
        await fresh.leave()
    finally:
        await tab.leave()
        await other.leave()
    history = (await server.http.get(NB + "/history")).json()["versions"]
    restored = [v for v in history if v["version"] > versions[-1]["version"]]
    user = (await server.http.get("/api/me")).json()["identity"]["username"]
    assert restored and all(v["author"] == user for v in restored)

    def saved() -> bool:
        nb = read_notebook_file(root_dir / "nb.ipynb")
        return nb is not None and [c.source for c in nb.cells] == ["a = 1", "b = 2", "m"]

    await eventually(saved)
