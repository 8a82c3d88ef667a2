"""The million-line cell, ``for i in range(10**6): print(i)``, stock and ours.

Both servers get the same notebook (one code cell, no outputs) and a session for it whose kernel
is warmed up over ``/channels`` first (a silent ``pass``), so neither run includes a kernel start.

* **stock** (jupyter-collaboration, as JupyterLab does it): a runner client executes the cell
  over the kernel websocket ``/channels`` (jupyter_server's default iopub rate limits apply) and
  writes every output message into its YNotebook like the JupyterLab frontend
  (``lab.LabRunner``: a stream message is appended to the last stream output's ``Text``); a
  second YNotebook client of the room is the watcher.
* **ours**: a SyncDB ``LiveNotebook`` is the watcher and asks for the run itself (``run``: the
  cell's ``state`` set to ``"start"``); the server runs the cell and writes the outputs.

Reported per stack: payload bytes of the websocket messages the watcher received from the run
request until the file was saved (``clients.ByteCount``); time from the run request until idle
(stock: ``execute_reply`` + ``status: idle`` on the runner's socket; ours: the watcher sees the
cell ``idle``), and until the watcher holds the final state; the server process's peak RSS
(psutil, every 50 ms, from before the run until the file was saved); the server's longest stall
(the slowest ``GET /api/status``, asked every 20 ms) and its longest event-loop stall (the
in-server probe, ``server_plugins.LoopStallProbe``); the ``.ipynb`` size after the autosave;
and which of the printed lines can be recovered: stock from the file (what the rate limiter let
through), ours from the visible output + ``more_output``, and from the file.

``REPS`` repetitions per stack, on fresh files, interleaved (``BENCH_FLOOD_REPS``, default 3:
one flood's peak RSS and longest stall vary from run to run by more than the gap between the
stacks, on 2 shared cores; the rows are the medians, the notes give every run). The module
takes 2–3 minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from clients import (
    ByteCount,
    KernelChannel,
    cell_record,
    counting_live_notebook,
    new_session,
    ordered_outputs,
    wait_until,
    warm_session_kernel,
    ynotebook_client,
)
from harness import BenchServer, ours_stack, running, stock_stack
from lab import LabRunner
from notebooks import code_notebook, wait_saved
from report import Row, load_average, main, median, progress, row
from samplers import LoopStall, RssSampler, StallProbe, loop_stall

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook

LINES = 10**6
CELL_ID = "flood"
CODE = "for i in range(10**6):\n    print(i)"
REPS = int(os.environ.get("BENCH_FLOOD_REPS", "3"))  # per stack; each on a fresh file
TIMEOUT = 600.0


@dataclass
class Lines:
    """Which of the ``LINES`` printed lines a text holds."""

    found: int  # distinct printed lines present
    garbled: int  # lines that are none of them (two half lines joined by a drop)
    exact: bool  # the text is exactly what was printed

    @property
    def fraction(self) -> float:
        return self.found / LINES


def expected_text() -> str:
    return "".join(f"{i}\n" for i in range(LINES))


def count_lines(text: str, expected: str) -> Lines:
    numbers = set()
    garbled = 0
    for line in text.splitlines():
        if line.isdigit() and int(line) < LINES and len(line) == len(str(int(line))):
            numbers.add(int(line))
        else:
            garbled += 1
    return Lines(len(numbers), garbled, text == expected)


def stdout_text(outputs: list[dict[str, Any]]) -> str:
    return "".join(
        o.get("text", "")
        for o in outputs
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


def file_stdout(notebook: nbformat.NotebookNode) -> str:
    return stdout_text([dict(o) for o in notebook.cells[0].outputs])


@dataclass
class FloodResult:
    received: ByteCount
    idle: float  # s from the run request until idle
    watcher_final: float  # s until the watcher holds the final state
    saved: float  # s until the file was saved in its final state
    rss_before: int
    rss_peak: int
    stall: float  # s, the slowest GET /api/status from the run request until saved
    stall_at: float  # s after the run request
    file_bytes: int
    file_lines: Lines
    live_lines: Lines  # ours: visible + more_output; stock: the watcher's document
    notes: str = ""
    #: the in-server probe's window, from the run request until saved
    loop: LoopStall = field(default_factory=LoopStall)

    @property
    def rss_growth(self) -> int:
        return self.rss_peak - self.rss_before


async def stock_flood(server: BenchServer, name: str, expected: str) -> FloodResult:
    path = server.root / name
    received = ByteCount()
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        http = await enter(server.http())
        runner_doc = await enter(ynotebook_client(server, http, name))
        watcher = await enter(ynotebook_client(server, http, name, count=received))
        kernel_id = await new_session(http, name)
        channel = await enter(KernelChannel.connect(server, http, kernel_id))
        await channel.execute("pass", silent=True)
        runner = LabRunner(runner_doc, channel)
        since = path.stat().st_mtime
        received.reset()
        await loop_stall(http)
        with RssSampler(server) as rss, StallProbe(server) as stall:
            start = time.perf_counter()
            reply, idle_at = await asyncio.wait_for(runner.run(0), TIMEOUT)
            count = reply["content"]["execution_count"]
            cell = watcher.ycells[0]
            await wait_until(
                lambda: (
                    cell.get("execution_state") == "idle" and cell.get("execution_count") == count
                ),
                watcher.ydoc,
                TIMEOUT,
            )
            watcher_final = time.perf_counter() - start
            saved, saved_at = await wait_saved(
                path,
                lambda nb: nb.cells[0].get("execution_count") == count,
                since=since,
                timeout=TIMEOUT,
            )
        loop = await loop_stall(http)
        live = count_lines(stdout_text(watcher.get_cell(0)["outputs"]), expected)
        stderr = [
            o.get("text", "")
            for o in saved.cells[0].outputs
            if o.get("output_type") == "stream" and o.get("name") == "stderr"
        ]
    rate_notices = sum(t.count("IOPub data rate exceeded") for t in stderr)
    return FloodResult(
        received,
        idle_at - start,
        watcher_final,
        saved_at - start,
        rss.before,
        rss.peak,
        stall.worst,
        stall.at - start,
        path.stat().st_size,
        count_lines(file_stdout(saved), expected),
        live,
        f"{rate_notices} 'IOPub data rate exceeded' notices in the output",
        loop,
    )


async def ours_flood(server: BenchServer, name: str, expected: str) -> FloodResult:
    path = server.root / name
    received = ByteCount()
    async with (
        server.http() as http,
        CocalcSyncClient(server.url, server.token) as client,
        counting_live_notebook(client, name, received) as watcher,
    ):
        await warm_session_kernel(server, http, name)
        since = path.stat().st_mtime
        received.reset()

        def idle(notebook: LiveNotebook) -> bool:
            record = cell_record(notebook, CELL_ID)
            return record.get("state") == "idle" and record.get("end") is not None

        await loop_stall(http)
        with RssSampler(server) as rss, StallProbe(server) as stall:
            start = time.perf_counter()
            await watcher.run([CELL_ID])
            await watcher.wait_for(idle, timeout=TIMEOUT)
            idle_at = time.perf_counter()
            count = cell_record(watcher, CELL_ID).get("exec_count")
            # the count is set when the cell starts, and an autosave may come mid-run: the
            # saved file is final when it ends with the last line
            saved, saved_at = await wait_saved(
                path,
                lambda nb: (
                    nb.cells[0].get("execution_count") == count
                    and file_stdout(nb).endswith(f"\n{LINES - 1}\n")
                ),
                since=since,
                timeout=TIMEOUT,
            )
        loop = await loop_stall(http)
        visible = ordered_outputs(cell_record(watcher, CELL_ID).get("output"))
        more = await watcher.more_output(CELL_ID)
    live = count_lines(stdout_text(visible) + stdout_text(more["messages"]), expected)
    marker = any(o.get("more_output") for o in visible)
    return FloodResult(
        received,
        idle_at - start,
        idle_at - start,
        saved_at - start,
        rss.before,
        rss.peak,
        stall.worst,
        stall.at - start,
        path.stat().st_size,
        count_lines(file_stdout(saved), expected),
        live,
        f"{len(visible)} visible outputs{' + more_output marker' if marker else ''} "
        f"({len(stdout_text(visible)) / 1e3:.0f} kB of text), more_output: "
        f"{len(more['messages'])} messages, truncated {more['truncated']}, "
        f"discarded {more['discarded']}",
        loop,
    )


async def measure(stock: BenchServer, ours: BenchServer) -> dict[str, list[FloodResult]]:
    expected = expected_text()
    results: dict[str, list[FloodResult]] = {"stock": [], "ours": []}
    for rep in range(REPS):
        for name, server, flood in (("stock", stock, stock_flood), ("ours", ours, ours_flood)):
            path = server.write_file(f"flood-{rep}.ipynb", code_notebook([(CELL_ID, CODE)]))
            load = load_average()
            progress(f"flood: {name}, repetition {rep + 1}/{REPS} (load {load})")
            result = await flood(server, path, expected)
            result.notes = f"{result.notes}; load {load} → {load_average()}"
            results[name].append(result)
            await asyncio.sleep(1)  # let the server settle before the other one starts
    return results


def _rows(results: dict[str, list[FloodResult]]) -> list[Row]:
    # the values are medians over the repetitions; the details in the notes are the last run's
    stock, ours = results["stock"][-1], results["ours"][-1]

    def values(get: Callable[[FloodResult], float], scale: float = 1) -> tuple[float, float]:
        return (
            median([get(r) * scale for r in results["stock"]]),
            median([get(r) * scale for r in results["ours"]]),
        )

    def runs(get: Callable[[FloodResult], float], scale: float = 1) -> str:
        each = {
            name: " / ".join(f"{get(r) * scale:.0f}" for r in results[name])
            for name in ("stock", "ours")
        }
        return f"every run: stock {each['stock']}, ours {each['ours']}"

    mega = 1e-6
    printed = len(expected_text())
    reps = "1 run per stack" if REPS == 1 else f"median of {REPS} runs per stack, details: last"
    about = f"{LINES:,} lines of print(i) ({printed * mega:.1f} MB); {reps}"
    window = "from the run request until the file was saved (+1.5 s quiet)"
    return [
        row(
            "flood: bytes received by a watching client",
            *values(lambda r: r.received.bytes, mega),
            "MB",
            f"{about}; websocket message payloads {window}; stock: YNotebook client of the room "
            f"({stock.received.frames} messages), ours: SyncDB LiveNotebook "
            f"({ours.received.frames} messages)",
        ),
        row(
            "flood: run request → idle",
            *values(lambda r: r.idle),
            "s",
            f"{about}; stock: execute_reply + status idle on the runner's /channels; ours: the "
            f"watcher sees the cell idle. Until the watcher holds the final state: stock "
            f"{stock.watcher_final:.2f} s, ours {ours.watcher_final:.2f} s; until the file is "
            f"saved: stock {stock.saved:.2f} s, ours {ours.saved:.2f} s",
        ),
        row(
            "flood: server peak RSS",
            *values(lambda r: r.rss_peak, mega),
            "MB",
            f"{about}; server process only (psutil every 50 ms) {window}; "
            f"{runs(lambda r: r.rss_peak, mega)} MB; growth over the run: "
            f"stock {stock.rss_growth * mega:.0f} MB, ours {ours.rss_growth * mega:.0f} MB",
        ),
        row(
            "flood: longest server stall",
            *values(lambda r: r.stall, 1000),
            "ms",
            f"{about}; the slowest GET /api/status (asked every 20 ms from a thread) {window}; "
            f"{runs(lambda r: r.stall, 1000)} ms; in the last run: "
            f"stock at {stock.stall_at:.1f} s, ours at {ours.stall_at:.1f} s after the request "
            f"(saved at {stock.saved:.1f} / {ours.saved:.1f} s)",
        ),
        row(
            "flood: longest event-loop stall (in-server probe)",
            *values(lambda r: r.loop.longest_ms),
            "ms",
            f"{about}; a task sleeping 1 ms on the server's event loop, how late it woke "
            f"(server_plugins.LoopStallProbe) {window}; {runs(lambda r: r.loop.longest_ms)} ms; "
            "the longest stall counted for no more than the server process's CPU time during "
            f"it (without what the machine's load adds): "
            f"{runs(lambda r: r.loop.longest_busy_ms)} ms; stalls over 20 ms: stock "
            f"{stock.loop.stalls} ({stock.loop.stalled_ms:.0f} ms in all), ours "
            f"{ours.loop.stalls} ({ours.loop.stalled_ms:.0f} ms); target ≤ 20 ms; where ours "
            f"stalled: {ours.loop.culprit()}; stock: {stock.loop.culprit()}; the most CPU the "
            f"loop thread spent between two wake-ups: stock {stock.loop.longest_cpu_ms:.0f} ms, "
            f"ours {ours.loop.longest_cpu_ms:.0f} ms",
        ),
        row(
            "flood: saved .ipynb size",
            *values(lambda r: r.file_bytes, mega),
            "MB",
            f"{about}; after each server's autosave (1 s); stock keeps only the lines the rate "
            f"limiter let through, ours re-inlines the overflow (inline_more_output_on_save); "
            f"bytes per printed line kept: stock {stock.file_bytes / stock.file_lines.found:.1f}, "
            f"ours {ours.file_bytes / ours.file_lines.found:.1f}",
        ),
        row(
            "flood: printed lines recoverable",
            median([100 * r.file_lines.fraction for r in results["stock"]]),
            median([100 * r.live_lines.fraction for r in results["ours"]]),
            "%",
            f"{about}; stock: lines in the saved file ({stock.file_lines.garbled} garbled; the "
            f"watcher's document has {100 * stock.live_lines.fraction:.1f}%), {stock.notes}; "
            f"its kernel printed {printed * mega / stock.idle:.2f} MB/s on average against "
            f"jupyter_server's iopub_data_rate_limit of 1 MB/s (over 3 s windows), so how much "
            f"is dropped depends on how fast the kernel runs, i.e. on the machine's load; "
            f"ours: visible output + more_output (exactly the printed text: "
            f"{ours.live_lines.exact}), the saved file has {100 * ours.file_lines.fraction:.1f}% "
            f"(exact: {ours.file_lines.exact}), {ours.notes}",
            lower_is_better=False,
        ),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        servers = [
            BenchServer(stock_stack(), Path(tmp) / "stock", loop_probe=True),
            BenchServer(ours_stack(), Path(tmp) / "ours", loop_probe=True),
        ]
        with running(servers):
            results = asyncio.run(measure(*servers))
    return _rows(results)


if __name__ == "__main__":
    main(run)
