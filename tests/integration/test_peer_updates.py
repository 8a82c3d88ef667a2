"""Every update from a SyncDB room peer is checked before it is applied: a malformed record
closes that connection only and changes nothing; saving and export keep working."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from helpers import poll, read_notebook_file, write_notebook
from httpx_ws import WebSocketDisconnect, aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from jupyter_cocalc_sync.transport import protocol

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
CELL = '["cell","cell-0"]'


def output_key_not_an_index(records: Map) -> None:
    records[CELL]["output"]["x"] = {"output_type": "stream", "name": "stdout", "text": "x"}


def exec_count_not_a_number(records: Map) -> None:
    records[CELL]["exec_count"] = "seven"


def number_not_finite(records: Map) -> None:
    records[CELL]["metadata"] = {"n": float("inf")}


def key_not_json(records: Map) -> None:
    records["cell-1"] = Map({"type": "cell", "id": "cell-1"})


def record_not_a_map(records: Map) -> None:
    records['["cell","cell-1"]'] = "a string"


def input_not_a_text(records: Map) -> None:
    records[CELL]["input"] = "replaced by a plain string"


def output_not_a_map(records: Map) -> None:
    records[CELL]["output"] = Array([1, 2])


def fields_not_the_key(records: Map) -> None:
    records['["cell","cell-1"]'] = Map({"type": "cell", "id": "cell-2", "input": Text("")})


def unknown_cell_type(records: Map) -> None:
    records[CELL]["cell_type"] = "javascript"


class RawPeer:
    """A y-websocket peer that writes whatever it likes into its copy of the table."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.doc = Doc()
        self.records = self.doc.get("records", type=Map)

    async def sync(self) -> None:
        await self.ws.send_bytes(protocol.sync_message(protocol.SYNC_STEP1, b"\x00"))
        while True:
            message = protocol.decode(await self.ws.receive_bytes())
            if message.kind == protocol.SYNC and message.sub == protocol.SYNC_STEP2:
                self.doc.apply_update(message.payload)
                return

    async def write(self, change: Callable[[Map], None]) -> None:
        updates: list[bytes] = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        with self.doc.transaction():
            change(self.records)
        self.doc.unobserve(subscription)
        await self.ws.send_bytes(protocol.sync_message(protocol.SYNC_UPDATE, updates[0]))

    async def closed(self) -> WebSocketDisconnect:
        with pytest.raises(WebSocketDisconnect) as closed:
            async with asyncio.timeout(10):
                while True:
                    await self.ws.receive_bytes()
        return closed.value


async def open_room(server):
    file_id = (await server.http.get(NB, params={"records": "false"})).json()["file_id"]
    return aconnect_ws(server.ws_url(f"/api/cocalc-sync/room/syncdb:{file_id}"), server.http)


@pytest.mark.parametrize(
    "change",
    [
        output_key_not_an_index,
        exec_count_not_a_number,
        number_not_finite,
        key_not_json,
        record_not_a_map,
        input_not_a_text,
        output_not_a_map,
        fields_not_the_key,
        unknown_cell_type,
    ],
)
async def test_a_bad_peer_update_closes_that_peer_and_changes_nothing(server, root_dir, change):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    before = (await server.http.get(NB)).json()
    async with await open_room(server) as bad, await open_room(server) as good:
        bad_peer, good_peer = RawPeer(bad), RawPeer(good)
        await bad_peer.sync()
        await good_peer.sync()
        await bad_peer.write(change)
        closed = await bad_peer.closed()
        assert closed.code == 1007 and closed.reason
        after = (await server.http.get(NB)).json()
        assert after["records"] == before["records"] and after["version"] == before["version"]
        # the other peer, in the same room, keeps writing
        await good_peer.write(lambda records: records[CELL]["input"].insert(0, "# ok\n"))

        async def arrived():
            records = (await server.http.get(NB)).json()["records"]
            return any(r.get("input") == "# ok\nx = 1" for r in records)

        await poll(arrived)
    # saving and export still work

    async def saved():
        notebook = read_notebook_file(root_dir / "nb.ipynb")
        return notebook is not None and notebook.cells[0].source == "# ok\nx = 1"

    await poll(saved)
    export = await server.http.get(NB + "/export", params={"to": "script"})
    assert export.status_code == 200 and "# ok" in export.text


async def test_good_peer_updates_pass(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    async with await open_room(server) as ws:
        peer = RawPeer(ws)
        await peer.sync()

        def edit(records: Map) -> None:
            records[CELL]["output"]["0"] = {"output_type": "stream", "name": "stdout", "text": "1"}
            records['["cell","cell-1"]'] = Map(
                {"type": "cell", "id": "cell-1", "input": Text("y"), "pos": 5, "output": Map()}
            )

        await peer.write(edit)

        async def arrived():
            records = (await server.http.get(NB)).json()["records"]
            return any(r.get("id") == "cell-1" for r in records)

        await poll(arrived)


def lab_execution_count_not_a_number(ynb: YNotebook) -> None:
    ynb.ycells[0]["execution_count"] = "seven"


def lab_output_not_a_map(ynb: YNotebook) -> None:
    ynb.ycells[0]["outputs"].append(42)


def lab_cell_type_unknown(ynb: YNotebook) -> None:
    ynb.ycells[0]["cell_type"] = "javascript"


def lab_cell_without_id(ynb: YNotebook) -> None:
    ynb.ycells.append(Map({"cell_type": "code", "source": Text("y"), "metadata": Map()}))


def lab_metadata_not_finite(ynb: YNotebook) -> None:
    ynb.ycells[0]["metadata"]["n"] = float("inf")


@pytest.mark.parametrize(
    "change",
    [
        lab_execution_count_not_a_number,
        lab_output_not_a_map,
        lab_cell_type_unknown,
        lab_cell_without_id,
        lab_metadata_not_finite,
    ],
)
async def test_a_bad_jupyterlab_peer_update_closes_that_peer_and_changes_nothing(
    server, root_dir, change
):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    session = await server.session("nb.ipynb")
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    before = (await server.http.get(NB)).json()
    async with aconnect_ws(url, server.http) as ws, server.ynotebook("nb.ipynb") as other:
        peer = RawPeer(ws)
        await peer.sync()
        ynb = YNotebook(peer.doc)
        await peer.write(lambda _records: change(ynb))
        closed = await peer.closed()
        assert closed.code == 1007 and closed.reason
        after = (await server.http.get(NB)).json()
        assert after["records"] == before["records"]
        # the other JupyterLab client keeps editing
        source = other.ycells[0]["source"]
        source += "  # later"

        async def arrived():
            records = (await server.http.get(NB)).json()["records"]
            return any(r.get("input") == "x = 1  # later" for r in records)

        await poll(arrived)

    async def saved():
        notebook = read_notebook_file(root_dir / "nb.ipynb")
        return notebook is not None and notebook.cells[0].source == "x = 1  # later"

    await poll(saved)
    export = await server.http.get(NB + "/export", params={"to": "script"})
    assert export.status_code == 200 and "# later" in export.text


async def test_a_close_reason_with_wide_characters_still_closes_cleanly(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    async with await open_room(server) as ws:
        peer = RawPeer(ws)
        await peer.sync()
        # the refusal quotes the value: 60 Thai characters are 180 bytes of UTF-8
        await peer.write(lambda records: records[CELL].__setitem__("exec_count", "ก" * 60))
        closed = await peer.closed()
    assert closed.code == 1007 and len(closed.reason.encode()) <= 123
