"""Warm ``1+1``: from the run request until the result is visible, stock and ours side by side.

* **ours**: client A (``LiveNotebook``) sets the cell's ``state`` to ``"start"`` and commits; the
  server's runner executes it and writes the outputs into the table; the time until client B
  sees the cell's ``execute_result`` ``2`` (B's change events, nothing polls). B is a second
  SyncDB ``LiveNotebook``, or a YNotebook client on the collaboration room (what a JupyterLab
  user watching sees, through our YNotebook projection). Each notebook has its own kernel.
* **stock, the browser's way**: ``POST /api/kernels``, the kernel websocket
  ``/api/kernels/<id>/channels`` (JSON protocol), ``execute_request`` ``1+1``, the time until
  its ``execute_result`` arrives on that socket. jupyter_server leaves Nagle's algorithm on, so
  three ways: neither end sets TCP_NODELAY; the client sets it (browsers and asyncio do); the
  server sets it (``server_plugins.NoDelayOnRequest``, asked for per connection).
* **stock, collaborative**: what JupyterLab does on the stock RTC stack — a runner client
  (``lab.LabRunner``) executes over ``/channels`` (server without TCP_NODELAY, as shipped)
  and writes the outputs into its YNotebook; the time until a second YNotebook client of the
  room sees the result. Compared with ours when B is a YNotebook client.

Every variant runs ``WARMUP`` times first (ours starts its kernel on the first run), then the
variants take turns in ``ROUNDS`` rounds of ``ROUND`` runs, one run every ``PAUSE`` s once the
previous one is idle, so load from other processes hits all alike. Each run is a real
execution (the execution count grows; a result only counts if its count is new). The server
CPU time per run (server process only, not the kernel) is reported too.

Then the **first output of a running cell** (``FirstOutputProbe``): a cell that prints one
flushed line and keeps running ``SLEEP`` s; the time until that line is seen. Each run prints
a different line (ours changes the cell's input in the same commit that asks for the run), so
an old output never counts. ``1+1`` ends before the runner's output throttle matters; this
shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from clients import (
    KernelChannel,
    cell_record,
    new_session,
    ordered_outputs,
    wait_until,
    ynotebook_client,
)
from harness import BENCH_DIR, BenchServer, ours_stack, running, stock_stack
from jupyter_ydoc import YNotebook
from lab import LabRunner
from notebooks import code_notebook
from report import Row, load_average, main, median, ms, percentile, progress, row
from server_plugins import NODELAY_ON_REQUEST

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook
from jupyter_cocalc_sync.sync.table import ChangeEvent

WARMUP = 20
ROUND = 10
ROUNDS = 10  # 1+1 samples per variant: ROUND * ROUNDS
FIRST_OUTPUT_WARMUP = 3
FIRST_OUTPUT_ROUNDS = 6  # first-output samples per variant: ROUND * FIRST_OUTPUT_ROUNDS
FIRST_OUTPUT_VARIANTS = (
    "stock-client-nodelay",
    "stock-server-nodelay",
    "stock-lab",
    "ours-syncdb",
    "ours-ynotebook",
)
PAUSE = 0.01
TIMEOUT = 60.0  # one run, the first included (kernel start)

CELL_ID = "one"
CODE = "1+1"
RESULT = "2"
SLEEP = 0.1  # the first-output cell keeps running this long after its print


def result_count(outputs: list[dict[str, Any]]) -> int | None:
    """The execution count of the ``execute_result`` ``2`` among ``outputs``, if there is one."""
    for output in outputs:
        if (
            output.get("output_type") == "execute_result"
            and output.get("data", {}).get("text/plain") == RESULT
        ):
            count = output.get("execution_count")
            return int(count) if count is not None else None
    return None


class Probe(Protocol):
    """What a run executes and what counts as "seen"."""

    name: str

    def code(self, n: int) -> str:
        """The cell's code for the ``n``-th run of a variant."""

    def seen(self, outputs: list[dict[str, Any]], n: int, last: int) -> bool:
        """Whether ``outputs`` show run ``n``'s output (``last``: the previous run's count)."""


class ResultProbe:
    """``1+1``: its ``execute_result`` ``2``, with an execution count newer than ``last``."""

    name = "result"

    def code(self, n: int) -> str:
        return CODE

    def seen(self, outputs: list[dict[str, Any]], n: int, last: int) -> bool:
        count = result_count(outputs)
        return count is not None and count > last


class FirstOutputProbe:
    """A cell that prints one line (flushed) and keeps running ``SLEEP`` s: that line."""

    name = "first output"

    def line(self, n: int) -> str:
        return f"output {n}\n"

    def code(self, n: int) -> str:
        return f"import time\nprint({self.line(n)[:-1]!r}, flush=True)\ntime.sleep({SLEEP})"

    def seen(self, outputs: list[dict[str, Any]], n: int, last: int) -> bool:
        return any(
            o.get("output_type") == "stream" and self.line(n) in o.get("text", "") for o in outputs
        )


RESULT_PROBE = ResultProbe()
FIRST_OUTPUT_PROBE = FirstOutputProbe()


class Variant(Protocol):
    name: str
    server: BenchServer

    async def sample(self, probe: Probe) -> float:
        """One run: seconds from the run request until its output is seen."""


def request_run(notebook: LiveNotebook, code: str) -> None:
    """Ask for a run of the cell through the table: its input (if it differs) and ``state:
    "start"`` in one commit."""
    record: dict[str, Any] = {"type": "cell", "id": CELL_ID, "state": "start"}
    if cell_record(notebook, CELL_ID).get("input") != code:
        record["input"] = code
    notebook.set(record)
    notebook.commit()


@dataclass
class SyncDBVariant:
    """Ours: A sets the cell's input (if it differs) and ``state: "start"`` in one commit; B
    (a SyncDB client) sees the output."""

    name: str
    server: BenchServer
    a: LiveNotebook
    b: LiveNotebook
    runs: int = 0
    last: int = 0  # the execution count of the previous run

    async def sample(self, probe: Probe) -> float:
        self.runs += 1
        n, last = self.runs, self.last
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[float] = loop.create_future()

        def changed(_event: ChangeEvent) -> None:
            # change listeners run after the transaction: B's replica can be read here
            stamp = time.perf_counter()
            outputs = ordered_outputs(cell_record(self.b, CELL_ID).get("output"))
            if not seen.done() and probe.seen(outputs, n, last):
                seen.set_result(stamp)

        unsubscribe = self.b.on_change(changed)
        try:
            start = time.perf_counter()
            request_run(self.a, probe.code(n))
            end = await asyncio.wait_for(seen, TIMEOUT)
        finally:
            unsubscribe()

        def idle(notebook: LiveNotebook) -> bool:
            record = cell_record(notebook, CELL_ID)
            return record.get("state") == "idle" and (record.get("exec_count") or 0) > last

        await self.a.wait_for(idle, timeout=TIMEOUT)
        await self.b.wait_for(idle, timeout=TIMEOUT)
        self.last = cell_record(self.b, CELL_ID)["exec_count"]
        return end - start


async def _seen_in(
    ynb: YNotebook, seen_in: Callable[[list[dict[str, Any]]], bool], run: Callable[[], Any]
) -> tuple[float, float]:
    """Call ``run()`` (a coroutine function) and take the time from the call until ``ynb``'s
    cell has outputs for which ``seen_in`` is true; (start, end)."""
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[float] = loop.create_future()

    def confirm(stamp: float) -> None:
        if not seen.done() and seen_in(ynb.ycells[0]["outputs"].to_py()):
            seen.set_result(stamp)

    def changed(_event: Any) -> None:
        # observers run inside the transaction, where the document cannot be read: take the
        # time now, look right after
        loop.call_soon(confirm, time.perf_counter())

    subscription = ynb.ydoc.observe(changed)
    try:
        start = time.perf_counter()
        await run()
        end = await asyncio.wait_for(seen, TIMEOUT)
    finally:
        ynb.ydoc.unobserve(subscription)
    return start, end


async def _ynotebook_idle(ynb: YNotebook, last: int) -> int:
    """Wait until ``ynb``'s cell is idle with a count above ``last``; that count."""
    cell = ynb.ycells[0]

    def idle() -> int | None:
        count = cell.get("execution_count")
        if cell.get("execution_state") == "idle" and count is not None and count > last:
            return int(count)
        return None

    return await wait_until(idle, ynb.ydoc, TIMEOUT)


@dataclass
class YNotebookWatcherVariant:
    """Ours: A (SyncDB) asks for the run as in ``SyncDBVariant``; B is a YNotebook client of
    our collaboration room."""

    name: str
    server: BenchServer
    a: LiveNotebook
    b: YNotebook
    runs: int = 0
    last: int = 0

    async def sample(self, probe: Probe) -> float:
        self.runs += 1
        n, last = self.runs, self.last

        async def run() -> None:
            request_run(self.a, probe.code(n))

        start, end = await _seen_in(self.b, lambda o: probe.seen(o, n, last), run)
        self.last = await _ynotebook_idle(self.b, last)
        await self.a.wait_for(
            lambda nb: cell_record(nb, CELL_ID).get("state") == "idle", timeout=TIMEOUT
        )
        return end - start


@dataclass
class LabVariant:
    """Stock RTC: A runs the cell over ``/channels`` and writes the outputs into its
    YNotebook (``LabRunner``); B, a second YNotebook client, sees the output."""

    name: str
    server: BenchServer
    runner: LabRunner
    b: YNotebook
    runs: int = 0
    last: int = 0

    async def sample(self, probe: Probe) -> float:
        self.runs += 1
        n, last = self.runs, self.last
        source = self.runner.ynb.ycells[0]["source"]
        code = probe.code(n)
        if str(source) != code:  # the user edits the cell, then runs it
            source.clear()
            source += code
            await wait_until(lambda: str(self.b.ycells[0]["source"]) == code, self.b.ydoc)

        async def run() -> None:
            await self.runner.run(0)

        start, end = await _seen_in(self.b, lambda o: probe.seen(o, n, last), run)
        self.last = await _ynotebook_idle(self.b, last)
        return end - start


@dataclass
class ChannelVariant:
    """Stock, one socket: ``execute_request`` → its output on the same socket."""

    name: str
    server: BenchServer
    channel: KernelChannel
    runs: int = 0

    async def sample(self, probe: Probe) -> float:
        self.runs += 1
        n = self.runs
        start = time.perf_counter()
        msg_id = await self.channel.send_execute(probe.code(n))
        end: float | None = None
        streamed = ""  # (a printed line may come in two messages on a busy machine)
        async with asyncio.timeout(TIMEOUT):
            async for message in self.channel.replies(msg_id):
                kind = message["msg_type"]
                if end is None and kind in ("stream", "execute_result"):
                    output = {"output_type": kind, **message["content"]}
                    if kind == "stream":
                        streamed += output.get("text", "")
                        output["text"] = streamed
                    if probe.seen([output], n, 0):
                        end = time.perf_counter()
        assert end is not None, f"{self.name}: no output for {probe.name}"
        return end - start


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    server_cpu: float = 0.0

    @property
    def cpu_per_run(self) -> float:
        return self.server_cpu / len(self.seconds)


async def measure_in_turns(
    variants: list[Variant], probe: Probe, warmup: int, rounds: int
) -> dict[str, Samples]:
    for variant in variants:
        progress(f"execute: {probe.name}, warming up {variant.name}")
        for _ in range(warmup):
            await variant.sample(probe)
            await asyncio.sleep(PAUSE)
    results = {variant.name: Samples() for variant in variants}
    for _ in range(rounds):
        for variant in variants:
            result = results[variant.name]
            cpu = variant.server.cpu_seconds()
            for _ in range(ROUND):
                result.seconds.append(await variant.sample(probe))
                await asyncio.sleep(PAUSE)
            result.server_cpu += variant.server.cpu_seconds() - cpu
    return results


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channels:
    """A stock single-socket variant."""

    name: str
    client_nodelay: bool
    server_nodelay: bool
    title: str
    notes: str


CHANNELS = (
    Channels("stock-nagle", False, False, "no TCP_NODELAY", "neither end sets TCP_NODELAY"),
    Channels(
        "stock-client-nodelay",
        True,
        False,
        "client TCP_NODELAY",
        "the client sets TCP_NODELAY (as browsers and asyncio do), the server does not",
    ),
    Channels(
        "stock-server-nodelay",
        True,
        True,
        "server TCP_NODELAY",
        "both ends set TCP_NODELAY (server: bench/server_plugins.py NoDelayOnRequest)",
    ),
)


@dataclass
class Results:
    result: dict[str, Samples]  # 1+1, by variant
    first_output: dict[str, Samples]
    load_before: str
    load_between: str
    load_after: str


async def measure(stock: BenchServer, ours: BenchServer) -> Results:
    notebook = code_notebook([(CELL_ID, CODE)])
    for name in ("syncdb.ipynb", "ynotebook.ipynb"):
        ours.write_file(name, notebook)
    stock.write_file("lab.ipynb", notebook)
    load_before = load_average()
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        stock_http = await enter(stock.http())
        ours_http = await enter(ours.http())
        variants: list[Variant] = []
        for variant in CHANNELS:
            kernel = await stock_http.post("/api/kernels", json={"name": "python3"})
            kernel.raise_for_status()
            query = "&nodelay=1" if variant.server_nodelay else ""
            channel = await enter(
                KernelChannel.connect(stock, stock_http, kernel.json()["id"], query=query)
            )
            channel.set_client_nodelay(variant.client_nodelay)
            variants.append(ChannelVariant(variant.name, stock, channel))

        # stock RTC: the runner opens the notebook and its session as JupyterLab does
        lab_a = await enter(ynotebook_client(stock, stock_http, "lab.ipynb"))
        lab_b = await enter(ynotebook_client(stock, stock_http, "lab.ipynb"))
        kernel_id = await new_session(stock_http, "lab.ipynb")
        lab_channel = await enter(KernelChannel.connect(stock, stock_http, kernel_id))
        variants.append(LabVariant("stock-lab", stock, LabRunner(lab_a, lab_channel), lab_b))

        client = await enter(CocalcSyncClient(ours.url, ours.token))
        a = await client.open("syncdb.ipynb")
        b = await client.open("syncdb.ipynb")
        variants.append(SyncDBVariant("ours-syncdb", ours, a, b))
        a2 = await client.open("ynotebook.ipynb")
        b2 = await enter(ynotebook_client(ours, ours_http, "ynotebook.ipynb"))
        variants.append(YNotebookWatcherVariant("ours-ynotebook", ours, a2, b2))

        results = await measure_in_turns(variants, RESULT_PROBE, WARMUP, ROUNDS)
        load_between = load_average()
        firsts = await measure_in_turns(
            [v for v in variants if v.name in FIRST_OUTPUT_VARIANTS],
            FIRST_OUTPUT_PROBE,
            FIRST_OUTPUT_WARMUP,
            FIRST_OUTPUT_ROUNDS,
        )
    return Results(results, firsts, load_before, load_between, load_average())


def _rows(measured: Results) -> list[Row]:
    results, firsts = measured.result, measured.first_output

    def med(name: str, samples: dict[str, Samples] = results) -> float:
        return ms(median(samples[name].seconds))

    def p90(name: str, samples: dict[str, Samples] = results) -> float:
        return ms(percentile(samples[name].seconds, 90))

    how = (
        f"{len(results['ours-syncdb'].seconds)} runs per variant after {WARMUP} warm-up, "
        f"variants in turns ({ROUND} runs each), one run every {ms(PAUSE):.0f} ms once idle; "
        f"load {measured.load_before} → {measured.load_between} (1/5/15 min)"
    )
    ours_what = "ours: A sets state start + commit → B (2nd SyncDB LiveNotebook) sees the result"
    rows: list[Row] = []
    for variant in CHANNELS:
        stock_what = (
            f"stock: execute_request → execute_result on the same /channels socket, {variant.notes}"
        )
        for stat, value in (("median", med), ("p90", p90)):
            rows.append(
                row(
                    f"warm 1+1 → result seen, {stat} (stock /channels, {variant.title})",
                    value(variant.name),
                    value("ours-syncdb"),
                    "ms",
                    f"{stock_what}; {ours_what}; target ours < 10 ms median; {how}",
                )
            )
    lab = (
        "stock: JupyterLab-like runner (/channels, server without TCP_NODELAY as shipped) writes "
        "outputs into its YNotebook → 2nd YNotebook client of the room sees them; ours: "
        "SyncDB A sets state start → YNotebook client of our room (projection) sees them"
    )
    for stat, value in (("median", med), ("p90", p90)):
        rows.append(
            row(
                f"warm 1+1 → result seen by a YNotebook client, {stat}",
                value("stock-lab"),
                value("ours-ynotebook"),
                "ms",
                f"{lab}; {how}",
            )
        )
    cpu = "user+system CPU of the server process (not the kernel) over the measured runs / runs"
    rows.append(
        row(
            "server CPU per warm 1+1 (stock /channels vs ours SyncDB A→B)",
            ms(results["stock-client-nodelay"].cpu_per_run),
            ms(results["ours-syncdb"].cpu_per_run),
            "ms",
            f"{cpu}; ours also writes the table, its change log and broadcasts to 2 clients",
        )
    )
    rows.append(
        row(
            "server CPU per warm 1+1, YNotebook watcher (stock RTC vs ours)",
            ms(results["stock-lab"].cpu_per_run),
            ms(results["ours-ynotebook"].cpu_per_run),
            "ms",
            cpu,
        )
    )
    first = (
        f"a cell that prints one flushed line, then sleeps {SLEEP:.1f} s: run request → that "
        f"line seen (each run prints a new line: the input changes with the run request); "
        f"{len(firsts['ours-syncdb'].seconds)} runs per variant after {FIRST_OUTPUT_WARMUP} "
        f"warm-up, in turns; load {measured.load_between} → {measured.load_after}"
    )
    for stock_name, ours_name, title, what in (
        (
            "stock-client-nodelay",
            "ours-syncdb",
            "stock /channels, client TCP_NODELAY",
            "ours: SyncDB A → B",
        ),
        (
            "stock-server-nodelay",
            "ours-syncdb",
            "stock /channels, server TCP_NODELAY",
            "ours: SyncDB A → B",
        ),
        ("stock-lab", "ours-ynotebook", "YNotebook watcher", lab),
    ):
        rows.append(
            row(
                f"first output of a running cell → seen, median ({title})",
                med(stock_name, firsts),
                med(ours_name, firsts),
                "ms",
                f"{first}; {what}; p90 stock {p90(stock_name, firsts):.1f} ms, ours "
                f"{p90(ours_name, firsts):.1f} ms",
            )
        )
    return rows


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-execute-") as tmp:
        servers = [
            BenchServer(
                stock_stack(),
                Path(tmp) / "stock",
                config=NODELAY_ON_REQUEST,
                pythonpath=[BENCH_DIR],
            ),
            BenchServer(ours_stack(), Path(tmp) / "ours"),
        ]
        with running(servers):
            measured = asyncio.run(measure(*servers))
    return _rows(measured)


if __name__ == "__main__":
    main(run)
