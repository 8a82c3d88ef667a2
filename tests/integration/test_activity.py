"""Server-side work and room traffic count as server activity (``/api/status``
``last_activity``, what JupyterHub's activity reports and idle cullers read)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from helpers import poll, write_notebook

#: refreshes of the activity during a run, in seconds (short for the test)
INTERVAL = 0.3

pytestmark = pytest.mark.cocalc(activity_interval=INTERVAL, document_cleanup_delay=30)


async def last_activity(server) -> datetime:
    # /api/status itself is not activity (jupyter_server does not track it)
    status = (await server.http.get("/api/status")).json()
    return datetime.fromisoformat(status["last_activity"])


def state(nb, cell_id: str) -> str | None:
    return (nb.get_one({"type": "cell", "id": cell_id}) or {}).get("state")


async def test_a_silent_cell_keeps_the_server_active_and_idle_lets_it_rest(
    server, root_dir, live, jp_serverapp
):
    write_notebook(root_dir / "nb.ipynb", ["import time\ntime.sleep(4)", "1 + 1"])
    nb = await live()
    nb.set({"type": "cell", "id": "cell-0", "state": "start"})
    nb.commit()
    await nb.wait_for(lambda n: state(n, "cell-0") == "busy", timeout=60)
    # from here on no client sends anything and the cell prints nothing
    seen = [await last_activity(server)]

    async def moved_while_running():
        now = await last_activity(server)
        if now > seen[-1]:
            seen.append(now)
        return len(seen) >= 4

    await poll(moved_while_running, timeout=3.5, every=0.05)
    assert state(nb, "cell-0") == "busy", "the activity moved only after the cell ended"

    await nb.wait_for(lambda n: state(n, "cell-0") == "idle", timeout=30)
    await nb.close()  # no peer left either
    rested = await last_activity(server)
    await asyncio.sleep(5 * INTERVAL)  # several refresh intervals with nothing going on
    assert await last_activity(server) == rested
    assert jp_serverapp.web_app.settings["cocalc_sync"].activity.working == 0


async def test_room_messages_are_activity(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    nb = await live()
    before = await last_activity(server)

    async def later():
        return await last_activity(server) > before

    # nothing else happens, so only the edit below can move it
    await asyncio.sleep(2 * INTERVAL)
    assert not await later()
    nb.set({"type": "cell", "id": "cell-0", "input": "x = 2"})
    nb.commit()
    await poll(later, timeout=10)
    async with server.ynotebook("nb.ipynb") as lab:
        before = await last_activity(server)
        source = lab.ycells[0]["source"]
        source += "\n# from JupyterLab"  # (on a local name: the Text is edited, not replaced)
        await poll(later, timeout=10)
