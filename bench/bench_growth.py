"""Growth: what a running cell's output costs in the log and on the wire, against its final size.

Three cells, each in a notebook of its own, run once per stack with watching clients connected:

* **print**: 1 MB printed over ``SECONDS`` s in 400 chunks of 25 lines;
* **progress**: a ``STEPS``-step ``\\r`` progress bar, one flushed print per step;
* **stdout+progress**: 200 KB of stdout, then the same progress bar.

Ours: the cell runs through ``POST /api/cocalc-sync/notebooks/{path}/run``; the watchers are a
SyncDB ``LiveNotebook`` and a YNotebook client of the collaboration room (what JupyterLab
runs). Stock: the cell runs as JupyterLab runs it (``lab.LabRunner``: the kernel websocket,
every output written into the runner's YNotebook); the watcher is a second YNotebook client.
Each notebook's kernel is started by a session and warmed up before anything is measured.

Measured per stack, from the run request until the file was saved in its final state (and left
alone 1.5 s): the growth of the server's SQLite store (``samplers.StoreSize``: ours
``CocalcSync.store_path``, stock jupyter-server-ydoc's ``SQLiteYStore``), the websocket payload
bytes each watcher received, and the longest event-loop stall inside the server
(``server_plugins.LoopStallProbe``). Each is reported against the **final output**: the compact
JSON of the cell's outputs in the saved ``.ipynb``. Targets: log ≤ 2×, bytes per client ≤ 1.5×
the final output, stall ≤ 20 ms.

Durations: ``BENCH_GROWTH_SECONDS`` (default 20) and ``BENCH_GROWTH_STEPS`` (default 10 000);
``BENCH_QUICK=1`` (``python bench/run.py --quick growth``) makes them 3 s and 1000 steps, for a
run under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from clients import (
    ByteCount,
    KernelChannel,
    cell_record,
    counting_live_notebook,
    new_session,
    wait_until,
    warm_session_kernel,
    ynotebook_client,
)
from harness import BenchServer, ours_stack, running, stock_stack
from lab import LabRunner, remove_overwritten
from notebooks import code_notebook, wait_saved
from report import Row, failed_row, load_average, main, progress, row
from samplers import LoopStall, StoreSize, loop_stall, store_size

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook

QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = float(os.environ.get("BENCH_GROWTH_SECONDS", 3 if QUICK else 20))
STEPS = int(os.environ.get("BENCH_GROWTH_STEPS", 1000 if QUICK else 10_000))
CELL_ID = "growth"
TIMEOUT = 600.0
#: the most one stack may take over one scenario (a stack that falls far behind fails it)
SCENARIO_TIMEOUT = 480.0
MEGA = 1e-6

PRINT = f"""import time
for i in range(400):
    print("\\n".join(f"{{i:04d}}-{{j:02d}} " + "x" * 91 for j in range(25)), flush=True)
    time.sleep({SECONDS / 400})"""
PROGRESS = f"""import time
for i in range({STEPS}):
    print(f"\\r{{i}}/{STEPS} " + "#" * (i // 200), end="", flush=True)
    time.sleep(0.001)"""
STDOUT_THEN_PROGRESS = f"""for i in range(2000):
    print(f"{{i:05d}} " + "y" * 93)
{PROGRESS}"""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    code: str


SCENARIOS = (
    Scenario("print", f"1 MB printed over {SECONDS:g} s in 400 chunks", PRINT),
    Scenario("progress", f"{STEPS}-step \\r progress bar", PROGRESS),
    Scenario(
        "stdout+progress",
        f"200 KB of stdout, then a {STEPS}-step progress bar",
        STDOUT_THEN_PROGRESS,
    ),
)


@dataclass
class Growth:
    """One scenario on one stack."""

    log: StoreSize  # growth of the store
    final_output: int  # bytes: compact JSON of the cell's outputs in the saved file
    received: dict[str, ByteCount]  # per watcher kind: "syncdb", "lab"
    loop: LoopStall
    seconds: float  # run request → the file saved in its final state
    notes: list[str] = field(default_factory=list)

    def per_output(self, value: float) -> float:
        return value / self.final_output


def _outputs_bytes(notebook: nbformat.NotebookNode) -> int:
    return len(json.dumps(notebook.cells[0].outputs, separators=(",", ":")))


def _stdout(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        o.get("text", "") for o in notebook.cells[0].outputs if o.get("output_type") == "stream"
    )


async def stock_growth(server: BenchServer, name: str) -> Growth:
    path = server.root / name
    lab = ByteCount()
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        http = await enter(server.http())
        runner_doc = await enter(ynotebook_client(server, http, name))
        watcher = await enter(ynotebook_client(server, http, name, count=lab))
        kernel_id = await new_session(http, name)
        channel = await enter(KernelChannel.connect(server, http, kernel_id))
        await channel.execute("pass", silent=True)
        runner = LabRunner(runner_doc, channel)
        await asyncio.sleep(1.5)  # the room's first writes to the store settle
        since = path.stat().st_mtime
        before = store_size(server.store_path)
        lab.reset()
        await loop_stall(http)
        start = time.perf_counter()
        reply, _idle = await asyncio.wait_for(runner.run(0), TIMEOUT)
        count = reply["content"]["execution_count"]
        cell = watcher.ycells[0]
        await wait_until(
            lambda: cell.get("execution_state") == "idle" and cell.get("execution_count") == count,
            watcher.ydoc,
            TIMEOUT,
        )
        saved, saved_at = await wait_saved(
            path, lambda nb: nb.cells[0].get("execution_count") == count, since=since
        )
        loop = await loop_stall(http)
        log = store_size(server.store_path) - before
    dropped = _stdout(saved).count("IOPub message rate exceeded") + _stdout(saved).count(
        "IOPub data rate exceeded"
    )
    notes = [f"{dropped} IOPub rate-limit notices in the output"] if dropped else []
    return Growth(log, _outputs_bytes(saved), {"lab": lab}, loop, saved_at - start, notes)


async def ours_growth(server: BenchServer, name: str, last_line: str) -> Growth:
    path = server.root / name
    received = {"syncdb": ByteCount(), "lab": ByteCount()}
    async with (
        server.http() as http,
        CocalcSyncClient(server.url, server.token) as client,
        counting_live_notebook(client, name, received["syncdb"]) as watcher,
        ynotebook_client(server, http, name, count=received["lab"]),
    ):
        await warm_session_kernel(server, http, name)
        await asyncio.sleep(1.5)  # the import's writes settle
        since = path.stat().st_mtime
        before = store_size(server.store_path)
        for count in received.values():
            count.reset()
        await loop_stall(http)

        def idle(notebook: LiveNotebook) -> bool:
            record = cell_record(notebook, CELL_ID)
            return record.get("state") == "idle" and record.get("end") is not None

        start = time.perf_counter()
        response = await http.post(
            f"/api/cocalc-sync/notebooks/{name}/run", json={"cell_ids": [CELL_ID]}
        )
        response.raise_for_status()
        await watcher.wait_for(idle, timeout=TIMEOUT)
        count = cell_record(watcher, CELL_ID).get("exec_count")
        # an autosave may come mid-run: the saved file is final when it ends as the run did
        saved, saved_at = await wait_saved(
            path,
            lambda nb: (
                nb.cells[0].get("execution_count") == count
                and remove_overwritten(_stdout(nb)).rstrip("\n").endswith(last_line)
            ),
            since=since,
            timeout=TIMEOUT,
        )
        loop = await loop_stall(http)
        log = store_size(server.store_path) - before
    return Growth(log, _outputs_bytes(saved), received, loop, saved_at - start)


def _last_line(scenario: Scenario) -> str:
    """The last line the cell's output shows (what a finished run's saved file ends with)."""
    if scenario.name == "print":
        return "0399-24 " + "x" * 91
    i = STEPS - 1
    return f"{i}/{STEPS} " + "#" * (i // 200)


async def measure(
    stock: BenchServer, ours: BenchServer
) -> dict[str, dict[str, Growth] | Exception]:
    """Each scenario's growth on both stacks, or the error that ended it (its rows say so;
    the next scenarios still run)."""
    results: dict[str, dict[str, Growth] | Exception] = {}
    for scenario in SCENARIOS:
        name = f"growth-{scenario.name.replace('+', '-')}.ipynb"
        for server in (stock, ours):
            server.write_file(name, code_notebook([(CELL_ID, scenario.code)]))
        load = load_average()
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                progress(f"growth: {scenario.name}, stock (load {load})")
                stock_result = await stock_growth(stock, name)
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                progress(f"growth: {scenario.name}, ours (load {load_average()})")
                ours_result = await ours_growth(ours, name, _last_line(scenario))
        # any failure of a scenario is its rows' content, whatever it is
        except Exception as error:
            progress(f"growth: {scenario.name} failed: {type(error).__name__}: {error}")
            results[scenario.name] = error
            continue
        ours_result.notes.append(f"load {load} → {load_average()}")
        results[scenario.name] = {"stock": stock_result, "ours": ours_result}
    return results


def _rows(scenario: Scenario, stock: Growth, ours: Growth) -> list[Row]:
    about = (
        f"{scenario.title}; final output (compact JSON of the saved cell outputs): stock "
        f"{stock.final_output / 1e3:.1f} kB, ours {ours.final_output / 1e3:.1f} kB; from the "
        f"run request until the file was saved ({stock.seconds:.1f} s / {ours.seconds:.1f} s)"
    )
    extra = "; ".join(stock.notes + ours.notes)
    stock_lab, ours_lab, ours_syncdb = (
        stock.received["lab"],
        ours.received["lab"],
        ours.received["syncdb"],
    )
    return [
        row(
            f"growth, {scenario.name}: log bytes ÷ final output",
            stock.per_output(stock.log.logical),
            ours.per_output(ours.log.logical),
            "×",
            f"{about}; store growth, pages in use: stock {stock.log.logical * MEGA:.2f} MB, "
            f"ours {ours.log.logical * MEGA:.2f} MB (database + WAL files on disk: "
            f"{stock.log.files * MEGA:.2f} / {ours.log.files * MEGA:.2f} MB); target ≤ 2×; "
            f"{extra}",
        ),
        row(
            f"growth, {scenario.name}: bytes per JupyterLab client ÷ final output",
            stock.per_output(stock_lab.bytes),
            ours.per_output(ours_lab.bytes),
            "×",
            f"{about}; websocket payload a YNotebook client of the room received: stock "
            f"{stock_lab.bytes * MEGA:.2f} MB in {stock_lab.frames} messages, ours "
            f"{ours_lab.bytes * MEGA:.2f} MB in {ours_lab.frames}; target ≤ 1.5×",
        ),
        row(
            f"growth, {scenario.name}: bytes per SyncDB client ÷ final output",
            stock.per_output(stock_lab.bytes),
            ours.per_output(ours_syncdb.bytes),
            "×",
            f"{about}; stock: its YNotebook client (it has no other); ours: a SyncDB "
            f"LiveNotebook, {ours_syncdb.bytes * MEGA:.2f} MB in {ours_syncdb.frames} "
            f"messages; target ≤ 1.5×",
        ),
        row(
            f"growth, {scenario.name}: longest event-loop stall",
            stock.loop.longest_ms,
            ours.loop.longest_ms,
            "ms",
            f"{about}; in-server probe (a task sleeping 1 ms); stalls over 20 ms: stock "
            f"{stock.loop.stalls}, ours {ours.loop.stalls}; target ≤ 20 ms; the longest stall, "
            f"ours: {ours.loop.culprit()}; stock: {stock.loop.culprit()}; the most CPU the "
            f"loop thread spent between two wake-ups: stock {stock.loop.longest_cpu_ms:.0f} ms, "
            f"ours {ours.loop.longest_cpu_ms:.0f} ms",
        ),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        servers = [
            BenchServer(stock_stack(), Path(tmp) / "stock", loop_probe=True),
            BenchServer(ours_stack(), Path(tmp) / "ours", loop_probe=True),
        ]
        with running(servers):
            results = asyncio.run(measure(*servers))
    rows: list[Row] = []
    for scenario in SCENARIOS:
        result = results[scenario.name]
        if isinstance(result, Exception):
            reason = TimeoutError(f"not done within {SCENARIO_TIMEOUT:.0f} s")
            error = reason if isinstance(result, TimeoutError) else result
            rows.append(failed_row(f"growth, {scenario.name}", error))
        else:
            rows += _rows(scenario, **result)
    return rows


if __name__ == "__main__":
    main(run)
