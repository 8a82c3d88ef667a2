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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from clients import wait_until, ynotebook_client
from harness import BenchServer, ours_stack, running, stock_stack
from notebooks import mixed_notebook, wait_saved
from report import Row, failed_row, load_average, main, progress, row
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
    #: stock has no such step
    ours_only: bool = False
    #: the error of a stack whose step failed, by stack name
    errors: dict[str, Exception] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def timed_window(http: httpx.AsyncClient) -> AsyncIterator[tuple[LoopStall, list[float]]]:
    """The probe's window over the block, and the block's duration (s) in the list."""
    duration: list[float] = []
    async with loop_stall_window(http) as stall:
        start = time.perf_counter()
        yield stall, duration
        duration.append(time.perf_counter() - start)


async def _measure(
    http: httpx.AsyncClient, step: Step, stack: str, work: Callable[[], Awaitable[Any]]
) -> None:
    """``work`` in one probe window, its stall and duration into ``step`` for ``stack``; a step
    that fails keeps its error there instead (its row says so) and the next steps still run."""
    try:
        async with timed_window(http) as (stall, duration):
            await work()
    # any failure of a step is reported in its row, whatever it is
    except Exception as error:
        progress(f"stall: {stack} {step.name} failed: {type(error).__name__}: {error}")
        step.errors[stack] = error
        return
    if stack == "stock":
        step.stock, step.stock_s = stall, duration[0]
    else:
        step.ours, step.ours_s = stall, duration[0]


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

        await _measure(http, steps["open-lab"], "stock", open_lab)
        await asyncio.sleep(2)  # the room's first save (stock saves a freshly opened notebook)

        def source() -> Any:
            if not opened:
                raise RuntimeError("the notebook did not open")
            return opened[0].ycells[0]["source"]

        async def edit_and_save() -> None:
            since = path.stat().st_mtime
            text = source()
            text.insert(len(text), "#")
            await _saved_after(path, since)

        await _measure(http, steps["autosave"], "stock", edit_and_save)

        async def read_file() -> None:
            (await http.get(f"/api/contents/{name}", params={"content": "1"})).raise_for_status()

        await _measure(http, steps["export"], "stock", read_file)

        async def edits() -> None:
            text = source()
            for _ in range(EDITS):
                text.insert(len(text), "x")
                await asyncio.sleep(0.01)

        await _measure(http, steps["history"], "stock", edits)


async def ours_steps(server: BenchServer, names: tuple[str, str], steps: dict[str, Step]) -> None:
    name, second = names
    path = server.root / name
    base = f"/api/cocalc-sync/notebooks/{name}"
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(server.http())
        client = await stack.enter_async_context(CocalcSyncClient(server.url, server.token))

        async def open_lab() -> None:
            await stack.enter_async_context(ynotebook_client(server, http, name, cells=CELLS))

        await _measure(http, steps["open-lab"], "ours", open_lab)

        async def open_syncdb() -> None:
            notebook = await client.open(second)
            stack.push_async_callback(notebook.close)
            await wait_until(lambda: len(notebook.db.get()) > CELLS, notebook.db.doc, TIMEOUT)

        await _measure(http, steps["open-syncdb"], "ours", open_syncdb)
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

        await _measure(http, steps["autosave"], "ours", edit_and_save)

        async def export() -> None:
            (await http.get(f"{base}/export", params={"to": "ipynb"})).raise_for_status()

        await _measure(http, steps["export"], "ours", export)

        async def edits() -> None:
            for i in range(EDITS):
                await commit(source + "x" * (i + 1))

        await _measure(http, steps["history"], "ours", edits)

        async def revert() -> None:
            (await http.post(f"{base}/revert", json={"version": 1})).raise_for_status()

        await _measure(http, steps["revert"], "ours", revert)


def _steps() -> dict[str, Step]:
    size = "a 1000-cell, ~20 MB notebook"
    return {
        "open-lab": Step(
            "open, JupyterLab client",
            f"{size} opened cold by a YNotebook client until it holds every cell",
        ),
        "open-syncdb": Step(
            "open, SyncDB client",
            f"{size} opened cold by CocalcSyncClient.open until synced",
            ours_only=True,
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
            ours_only=True,
        ),
    }


async def measure(stock: BenchServer, ours: BenchServer) -> dict[str, Step]:
    steps = _steps()
    text = mixed_notebook(CELLS)
    stock.write_file("big.ipynb", text)
    ours.write_file("big.ipynb", text)
    ours.write_file("big-2.ipynb", text)
    progress(f"stall: stock (load {load_average()})")
    await _all_steps("stock", stock_steps(stock, "big.ipynb", steps), steps)
    await asyncio.sleep(1)
    progress(f"stall: ours (load {load_average()})")
    await _all_steps("ours", ours_steps(ours, ("big.ipynb", "big-2.ipynb"), steps), steps)
    return steps


async def _all_steps(stack: str, steps_run: Awaitable[None], steps: dict[str, Step]) -> None:
    """Run one stack's steps; if they fail as a whole (a client's connection failing ends
    them all), the steps they did not measure have that error in their rows."""
    try:
        await steps_run
    # any failure ends this stack's steps and is reported in the rows, whatever it is
    except Exception as error:
        progress(f"stall: {stack} failed: {type(error).__name__}: {error}")
        for step in steps.values():
            measured = step.stock if stack == "stock" else step.ours
            skipped = stack == "stock" and step.ours_only
            if measured is None and not skipped and stack not in step.errors:
                step.errors[stack] = error


def _rows(steps: dict[str, Step], load: str) -> list[Row]:
    rows = []
    for step in steps.values():
        if step.errors:
            failures = "; ".join(f"{stack}: {error}" for stack, error in step.errors.items())
            rows.append(failed_row(f"stall: {step.name}", RuntimeError(failures)))
            continue
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
            "the most CPU the loop thread spent between two wake-ups: "
            f"{'' if stock is None else f'stock {stock.longest_cpu_ms:.0f} ms, '}"
            f"ours {step.ours.longest_cpu_ms:.0f} ms; "
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
