"""The longest event-loop stall inside the server while it handles a big notebook, stock and ours.

Both servers run the stall probe (``server_plugins.LoopStallProbe``: a task on the server's
event loop sleeps 1 ms in a loop; how late it wakes is how long the loop was busy with
something else; a watchdog thread samples the loop's stack during stalls). Each step below is
one window of the probe, from its first request until it is done; where stock has no
equivalent the stock column is empty. The notebook is ``notebooks.mixed_notebook``: 1000 cells,
~20 MB of outputs (stream text, HTML, base64 PNGs).

1. **open, JupyterLab client**: a YNotebook client opens the notebook cold (``PUT session`` +
   the room), until its document holds every cell (ours: import + the YNotebook projection);
2. **open, SyncDB client** (ours): ``CocalcSyncClient.open`` of a second copy, until synced;
3. **autosave**: one edit of a cell's source (stock: by the YNotebook client; ours: ``POST
   …/records``), until the file is saved;
4. **export**: ours ``GET …/export?to=ipynb`` from the live notebook; stock ``GET
   /api/contents/{path}`` (the file as a model, what a client reads to get the notebook);
5. **history + snapshot**: ``SNAPSHOT + 10`` one-character edits in a row (ours: ``POST
   …/records`` each, with ``CocalcSync.snapshot_interval = SNAPSHOT``, so a snapshot of the whole
   notebook is built during the window; stock: YNotebook edits, 10 ms apart);
6. **revert** (ours): ``POST …/revert`` to version 1, the import, undoing those edits.

The flood (``bench_flood``) and the growth scenarios (``bench_growth``) report their stalls in
their own rows. Target: ≤ 20 ms everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from clients import wait_until, ynotebook_client
from harness import BenchServer, ours_stack, running, stock_stack
from notebooks import mixed_notebook, wait_saved
from report import Row, load_average, main, progress, row
from samplers import LoopStall, loop_stall_window

from jupyter_cocalc_sync.client import CocalcSyncClient

ALIASES = ("stalls",)

CELLS = 1000
SNAPSHOT = 100  # CocalcSync.snapshot_interval of our server
EDITS = SNAPSHOT + 10
TIMEOUT = 600.0


@dataclass
class Step:
    name: str
    about: str
    stock: LoopStall | None = None
    ours: LoopStall | None = None
    stock_s: float = 0.0
    ours_s: float = 0.0


@contextlib.asynccontextmanager
async def timed_window(http: httpx.AsyncClient) -> AsyncIterator[tuple[LoopStall, list[float]]]:
    """The probe's window over the block, and the block's duration (s) in the list."""
    duration: list[float] = []
    async with loop_stall_window(http) as stall:
        start = time.perf_counter()
        yield stall, duration
        duration.append(time.perf_counter() - start)


async def _measure(
    http: httpx.AsyncClient, work: Callable[[], Awaitable[Any]]
) -> tuple[LoopStall, float]:
    async with timed_window(http) as (stall, duration):
        await work()
    return stall, duration[0]


async def _saved_after(path: Path, since: float) -> None:
    await wait_saved(path, lambda nb: True, since=since, quiet=0.5, timeout=TIMEOUT)


async def stock_steps(server: BenchServer, name: str, steps: dict[str, Step]) -> None:
    path = server.root / name
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(server.http())
        opened: list[Any] = []

        async def open_lab() -> None:
            opened.append(
                await stack.enter_async_context(ynotebook_client(server, http, name, cells=CELLS))
            )

        steps["open-lab"].stock, steps["open-lab"].stock_s = await _measure(http, open_lab)
        ynb = opened[0]
        await asyncio.sleep(2)  # the room's first save (stock saves a freshly opened notebook)
        source = ynb.ycells[0]["source"]

        async def edit_and_save() -> None:
            since = path.stat().st_mtime
            source.insert(len(source), "#")
            await _saved_after(path, since)

        steps["autosave"].stock, steps["autosave"].stock_s = await _measure(http, edit_and_save)

        async def read_file() -> None:
            (await http.get(f"/api/contents/{name}", params={"content": "1"})).raise_for_status()

        steps["export"].stock, steps["export"].stock_s = await _measure(http, read_file)

        async def edits() -> None:
            for _ in range(EDITS):
                source.insert(len(source), "x")
                await asyncio.sleep(0.01)

        steps["history"].stock, steps["history"].stock_s = await _measure(http, edits)


async def ours_steps(server: BenchServer, names: tuple[str, str], steps: dict[str, Step]) -> None:
    name, second = names
    path = server.root / name
    base = f"/api/cocalc-sync/notebooks/{name}"
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(server.http())
        client = await stack.enter_async_context(CocalcSyncClient(server.url, server.token))

        async def open_lab() -> None:
            await stack.enter_async_context(ynotebook_client(server, http, name, cells=CELLS))

        steps["open-lab"].ours, steps["open-lab"].ours_s = await _measure(http, open_lab)

        async def open_syncdb() -> None:
            notebook = await client.open(second)
            stack.push_async_callback(notebook.close)
            await wait_until(lambda: len(notebook.db.get()) > CELLS, notebook.db.doc, TIMEOUT)

        steps["open-syncdb"].ours, steps["open-syncdb"].ours_s = await _measure(http, open_syncdb)
        await asyncio.sleep(2)  # let anything the opens scheduled (an autosave) pass

        async def commit(text: str) -> int:
            edit = {"set": [{"type": "cell", "id": "cell-0", "input": text}]}
            response = await http.post(f"{base}/records", json=edit)
            response.raise_for_status()
            return response.json()["version"]

        source = "# cell 0\nresult_0 = compute(0)\nprint(result_0)"

        async def edit_and_save() -> None:
            since = path.stat().st_mtime
            await commit(source + "#")
            await _saved_after(path, since)

        steps["autosave"].ours, steps["autosave"].ours_s = await _measure(http, edit_and_save)

        async def export() -> None:
            (await http.get(f"{base}/export", params={"to": "ipynb"})).raise_for_status()

        steps["export"].ours, steps["export"].ours_s = await _measure(http, export)

        async def edits() -> None:
            for i in range(EDITS):
                await commit(source + "x" * (i + 1))

        steps["history"].ours, steps["history"].ours_s = await _measure(http, edits)

        async def revert() -> None:
            (await http.post(f"{base}/revert", json={"version": 1})).raise_for_status()

        steps["revert"].ours, steps["revert"].ours_s = await _measure(http, revert)


def _steps() -> dict[str, Step]:
    size = "a 1000-cell, ~20 MB notebook"
    return {
        "open-lab": Step(
            "open, JupyterLab client",
            f"{size} opened cold by a YNotebook client until it holds every cell",
        ),
        "open-syncdb": Step(
            "open, SyncDB client", f"{size} opened cold by CocalcSyncClient.open until synced"
        ),
        "autosave": Step(
            "autosave after an edit",
            f"{size}: one edit of a cell's source until the file is saved",
        ),
        "export": Step(
            "export",
            f"{size}: ours GET …/export?to=ipynb of the live notebook; stock GET "
            "/api/contents/{path} (the file)",
        ),
        "history": Step(
            f"{EDITS} edits (a snapshot among them)",
            f"{size}: {EDITS} one-character edits of a cell's source in a row; ours: POST "
            f"…/records each, snapshot_interval {SNAPSHOT}; stock: YNotebook edits 10 ms apart",
        ),
        "revert": Step(
            "revert to version 1",
            f"{size} after {EDITS} edits: POST …/revert to the imported version",
        ),
    }


async def measure(stock: BenchServer, ours: BenchServer) -> dict[str, Step]:
    steps = _steps()
    text = mixed_notebook(CELLS)
    stock.write_file("big.ipynb", text)
    ours.write_file("big.ipynb", text)
    ours.write_file("big-2.ipynb", text)
    progress(f"stall: stock (load {load_average()})")
    await stock_steps(stock, "big.ipynb", steps)
    await asyncio.sleep(1)
    progress(f"stall: ours (load {load_average()})")
    await ours_steps(ours, ("big.ipynb", "big-2.ipynb"), steps)
    return steps


def _rows(steps: dict[str, Step], load: str) -> list[Row]:
    rows = []
    for step in steps.values():
        assert step.ours is not None
        stock = step.stock
        notes = (
            f"{step.about}; the window took stock {step.stock_s:.2f} s, ours {step.ours_s:.2f} s; "
            if stock is not None
            else f"{step.about}; stock has no equivalent; the window took {step.ours_s:.2f} s; "
        )
        notes += (
            f"stalls over 20 ms: {'' if stock is None else f'stock {stock.stalls}, '}"
            f"ours {step.ours.stalls} ({step.ours.stalled_ms:.0f} ms in all); target ≤ 20 ms; "
            f"the longest stall, ours: {step.ours.culprit()}"
            f"{'' if stock is None else f'; stock: {stock.culprit()}'}; load {load}"
        )
        rows.append(
            row(
                f"stall: {step.name}",
                None if stock is None else stock.longest_ms,
                step.ours.longest_ms,
                "ms",
                notes,
            )
        )
    return rows


def run() -> list[Row]:
    snapshots = {"CocalcSync": {"snapshot_interval": SNAPSHOT}}
    with tempfile.TemporaryDirectory(prefix="bench-stall-") as tmp:
        servers = [
            BenchServer(stock_stack(), Path(tmp) / "stock", loop_probe=True),
            BenchServer(ours_stack(), Path(tmp) / "ours", config=snapshots, loop_probe=True),
        ]
        load = load_average()
        with running(servers):
            steps = asyncio.run(measure(*servers))
    return _rows(steps, f"{load} → {load_average()}")


if __name__ == "__main__":
    main(run)
