"""Kernel usage and run progress: live for every client, never in the notebook's history."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import write_notebook
from httpx_ws import aconnect_ws

from jupyter_cocalc_sync.execution import activity as activity_module
from jupyter_cocalc_sync.execution.activity import KERNEL_USER
from jupyter_cocalc_sync.rooms.registry import GLOBAL_AWARENESS
from jupyter_cocalc_sync.transport import protocol

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
MB = 2**20

pytestmark = pytest.mark.cocalc(kernel_usage_interval=0.2, kernel_usage_idle_interval=0.5)


async def history(server) -> list[int]:
    reply = await server.http.get(NB + "/history")
    return [v["version"] for v in reply.json()["versions"]]


async def settled(nb) -> list[int]:
    """Wait until the runner is done writing (kernel idle in the settings, every cell idle)."""
    await nb.wait_idle()
    await nb.wait_for(
        lambda nb: (
            (nb.get_one({"type": "settings", "id": "main"}) or {}).get("kernel_state") == "idle"
        )
    )
    await nb.sync()


class KernelInJupyterLab:
    """The kernel's awareness states as a JupyterLab client of a room sees them."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.states: list[dict] = []
        self.client_ids: set[int] = set()
        self.changed = asyncio.Event()

    def receive(self, frame: bytes) -> None:
        message = protocol.decode(frame)
        if message.kind != protocol.AWARENESS:
            return
        for client_id, _clock, state in protocol.decode_awareness(message.payload):
            value = json.loads(state)
            username = (value or {}).get("user", {}).get("username", "")
            if username.startswith(KERNEL_USER["username"]):
                self.states.append(value)
                self.client_ids.add(client_id)
                self.changed.set()

    async def wait_for(self, predicate, timeout: float = 30) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                found = next((s for s in reversed(self.states) if predicate(s)), None)
                if found is not None:
                    return found
                await self.changed.wait()


@contextlib.asynccontextmanager
async def jupyterlab_room(server, path: str | None) -> AsyncIterator[KernelInJupyterLab]:
    """A JupyterLab client of the notebook's room (no path: of the global awareness room)."""
    if path is None:
        url = server.ws_url(f"/api/collaboration/room/{GLOBAL_AWARENESS}")
    else:
        session = await server.session(path)
        room = f"json:notebook:{session['fileId']}?sessionId={session['sessionId']}"
        url = server.ws_url(f"/api/collaboration/room/{room}")
    async with aconnect_ws(url, server.http) as ws:
        seen = KernelInJupyterLab(ws)

        async def read() -> None:
            while True:
                seen.receive(await ws.receive_bytes())

        reader = asyncio.get_running_loop().create_task(read())
        try:
            yield seen
        finally:
            reader.cancel()


async def test_kernel_memory_rises_while_a_cell_allocates_and_falls_after(server, root_dir, live):
    write_notebook(
        root_dir / "nb.ipynb",
        ["import time\nx = b'x' * (200 * 2**20)\ntime.sleep(4)", "del x", "1 + 1"],
    )
    nb = await live()
    assert (await nb.fetch_kernel_usage())["kernel_usage"] is None  # no kernel yet
    await nb.run(["cell-2"])
    await settled(nb)
    first = await nb.wait_for(lambda nb: nb.kernel_usage)
    baseline = (
        await nb.wait_for(lambda nb: nb.kernel_usage["time"] > first["time"] and nb.kernel_usage)
    )["memory"]
    assert 10 * MB < baseline < 1000 * MB

    async with jupyterlab_room(server, "nb.ipynb") as lab:
        await nb.run(["cell-0"])
        peak = await nb.wait_for(
            lambda nb: nb.kernel_usage["memory"] > baseline + 180 * MB and nb.kernel_usage
        )
        # still running (awareness is not held for the log: it may overtake the "busy" state)
        assert nb.get_one({"type": "cell", "id": "cell-0"})["state"] in ("run", "busy")
        seen = await lab.wait_for(lambda s: s["kernel_usage"]["memory"] > baseline + 180 * MB)
        assert "MB" in seen["user"]["display_name"] and "busy" in seen["user"]["display_name"]
        await settled(nb)

        await nb.run(["cell-1"])
        await settled(nb)
        fallen = await nb.wait_for(
            lambda nb: nb.kernel_usage["memory"] < peak["memory"] - 150 * MB and nb.kernel_usage
        )
        await lab.wait_for(lambda s: s["kernel_usage"]["memory"] < peak["memory"] - 150 * MB)

    # samples keep coming (the awareness state is renewed) and the history does not move
    versions = await history(server)
    later = await nb.wait_for(
        lambda nb: nb.kernel_usage["time"] > fallen["time"] + 1000 and nb.kernel_usage
    )
    assert later["memory"] < peak["memory"] - 150 * MB
    assert await history(server) == versions
    rest = await nb.fetch_kernel_usage()
    assert rest["kernel_usage"]["memory"] < peak["memory"] - 150 * MB
    assert rest["run_progress"] == {"done": 1, "total": 1, "running": False}


async def test_run_progress_goes_from_0_to_n_during_a_run_all_for_every_client(
    server, root_dir, live
):
    cells = ["import time\ntime.sleep(0.3)"] * 4
    write_notebook(root_dir / "nb.ipynb", cells)
    nb = await live()
    watcher = await live()
    assert nb.run_progress is None
    seen: list[dict] = []

    async def watch() -> None:
        while True:
            last = seen[-1] if seen else None
            seen.append(
                await watcher.wait_for(
                    lambda w, last=last: w.run_progress != last and w.run_progress
                )
            )

    async with jupyterlab_room(server, "nb.ipynb") as lab:
        task = asyncio.get_running_loop().create_task(watch())
        try:
            assert sorted(await nb.run_all()) == ["cell-0", "cell-1", "cell-2", "cell-3"]
            await poll_seen(seen, lambda p: not p["running"])
        finally:
            task.cancel()
        final = await lab.wait_for(lambda s: s["run_progress"]["running"] is False)
        assert final["run_progress"] == {"done": 4, "total": 4, "running": False}
        during = [s for s in lab.states if s["run_progress"]["running"]]
        assert any("/4 cells" in s["user"]["display_name"] for s in during)

    done = [p["done"] for p in seen]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 4
    assert set(done) == {0, 1, 2, 3, 4}  # one update per finished cell
    assert all(p["total"] == 4 for p in seen)
    assert seen[-1]["running"] is False

    # progress is not history: a second run adds the run's own versions only
    await settled(nb)
    versions = await history(server)
    records = (await server.http.get(NB)).json()["records"]
    assert not any("run_progress" in r or "kernel_usage" in r for r in records)
    await nb.wait_for(lambda nb: nb.kernel_usage)
    assert await history(server) == versions


async def poll_seen(seen: list[dict], predicate) -> None:
    """Wait until the watcher task recorded a progress state matching ``predicate``."""
    async with asyncio.timeout(60):
        while not (seen and predicate(seen[-1])):
            await asyncio.sleep(0.02)


async def test_usage_is_read_over_rest_without_starting_a_kernel(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["1"])
    reply = await server.http.get(NB + "/kernel_usage")
    assert reply.status_code == 200
    assert reply.json() == {"kernel_usage": None, "run_progress": None}
    assert (await server.http.get("/api/sessions")).json() == []


async def test_jupyterlabs_collaborators_panel_lists_the_kernel_of_each_open_notebook(
    server, root_dir, live, jp_serverapp
):
    write_notebook(root_dir / "nb.ipynb", ["1 + 1"])
    nb = await live()
    async with jupyterlab_room(server, None) as lab:
        await nb.run(["cell-0"])
        entry = await lab.wait_for(lambda s: "MB" in s["user"]["display_name"])
        assert entry["documents"] == ["nb.ipynb"] and entry["current"] == "notebook:nb.ipynb"
        assert entry["user"]["display_name"].startswith("nb.ipynb: Kernel")
        (kernel_id,) = lab.client_ids

        # a window may not take the kernel's entry over
        forged = protocol.encode_awareness([(kernel_id, 10**6, json.dumps({"user": "mallory"}))])
        await lab.ws.send_bytes(protocol.awareness_message(forged))
        room = jp_serverapp.web_app.settings["cocalc_sync"].rooms.transient[GLOBAL_AWARENESS]
        await nb.wait_for(lambda nb: room.refused_awareness == 1)
        assert room.awareness.states[kernel_id]["documents"] == ["nb.ipynb"]

    # a window that connects later is shown the kernel at once
    async with jupyterlab_room(server, None) as late:
        entry = await late.wait_for(lambda s: True, timeout=5)
        assert late.client_ids == {kernel_id}


async def opened_activity(root_dir, live, jp_serverapp) -> tuple[Any, Any]:
    """A notebook opened by a client: its ``NotebookActivity`` and its SyncDB room."""
    write_notebook(root_dir / "nb.ipynb", ["1"])
    await live()
    documents = jp_serverapp.web_app.settings["cocalc_sync"].documents
    notebook = documents._opened[documents.file_id("nb.ipynb")]
    return notebook.activity, notebook.broadcast.room("syncdb")


async def test_a_kernel_state_that_did_not_change_is_not_sent_again(
    server, root_dir, live, jp_serverapp, monkeypatch
):
    activity, room = await opened_activity(root_dir, live, jp_serverapp)

    def sent() -> int:
        return room.awareness.meta[room.doc.client_id]["clock"]

    activity.progress = {"done": 1, "total": 1, "running": False}
    activity._publish_now()
    first = sent()
    # runs back to back each end as the one before: "1/1 cells done" again
    activity._publish_now()
    assert sent() == first
    # still renewed now and then: clients drop a state that is not
    monkeypatch.setattr(activity_module, "RENEW_INTERVAL", 0.0)
    activity._publish_now()
    assert sent() == first + 1


async def test_a_batch_shows_running_only_once_it_has_run_a_while(
    server, root_dir, live, jp_serverapp, monkeypatch
):
    activity, room = await opened_activity(root_dir, live, jp_serverapp)

    def sent() -> tuple[int, dict | None]:
        client_id = room.doc.client_id
        return room.awareness.meta[client_id]["clock"], room.awareness.states.get(client_id)

    before, _ = sent()
    activity.run_progress(0, 1, True)
    activity._publish_now()  # the batch just began: nobody is sent that it runs
    assert sent()[0] == before
    activity.run_progress(1, 0, False)  # a quick run: its end is all there is to see
    activity._publish_now()
    clock, state = sent()
    assert clock == before + 1
    assert state["run_progress"] == {"done": 1, "total": 1, "running": False}
    # a batch that has run a while shows as running
    monkeypatch.setattr(activity_module, "RUNNING_SHOWN_AFTER", 0.0)
    activity.run_progress(0, 2, True)
    activity._publish_now()
    clock, state = sent()
    assert clock == before + 2 and state["run_progress"]["running"] is True
