"""Real-time collaboration against real servers, stock and ours side by side.

Three servers run at once: the stock jupyter-collaboration server, ours, and a second of ours
(so memory with SyncDB clients only is measured apart from memory with the YNotebook
projection). Client kinds:

* **YNotebook** clients (what JupyterLab runs): ``PUT /api/collaboration/session/{path}``, then
  a pycrdt ``Provider`` over httpx-ws on ``/api/collaboration/room/json:notebook:{file_id}`` —
  on the stock server and on ours (where it is served by the YNotebook projection);
* **SyncDB** clients (ours only): ``CocalcSyncClient(...).open(path)``, i.e.
  ``GET /api/cocalc-sync/notebooks/{path}`` then y-websocket on ``room/syncdb:{file_id}``.

(a) **Edit propagation**: client A appends one character to a cell's source, the time until
client B's document shows it (B's document is observed, nothing polls). Pairs take turns in
rounds of ``ROUND`` edits, one edit every ``PAUSE`` s, after ``WARMUP`` edits each. Each pair
has a server of its own, whose CPU time per edit is reported too.

(b) **Cold open**: a notebook of ``OPEN_CELLS`` cells with ``OPEN_BYTES`` of stream outputs,
never opened by that server before, from the first request (``PUT session`` / ``GET notebooks``)
until the client's document holds every cell; ``OPEN_FILES`` fresh files per server, opened in
turns.

(c) **Server cost of opening**: RSS of the server process (psutil) before and ``SETTLE`` s after
those ``OPEN_FILES`` notebooks were opened (all still open, each with its client), and the CPU
time the server process used meanwhile, per notebook.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clients import ynotebook_client
from harness import BenchServer, ours_stack, running, stock_stack
from jupyter_ydoc import YNotebook
from notebooks import small_notebook, text_notebook
from report import Row, main, median, ms, percentile, progress, row

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook

WARMUP = 20
ROUND = 10
ROUNDS = 20  # samples per pair: ROUND * ROUNDS
PAUSE = 0.01  # between edits: 100 keys per second

OPEN_CELLS = 300
OPEN_BYTES = 10_000_000
OPEN_FILES = 10
SETTLE = 2.0

Unsubscribe = Callable[[], None]


# -- (a) edit propagation ---------------------------------------------------------------------


class EditPair(Protocol):
    """Two clients of one notebook on ``server``: A edits cell 0's source, B observes."""

    name: str
    server: BenchServer

    def edit(self) -> None:
        """Append one character to the cell on A."""

    def length(self) -> int:
        """The length of the cell's source on B."""

    def observe(self, callback: Callable[[], None]) -> Unsubscribe:
        """Call ``callback()`` after every change of B's document."""


@dataclass
class YNotebookPair:
    name: str
    server: BenchServer
    a: YNotebook
    b: YNotebook

    def edit(self) -> None:
        source = self.a.ycells[0]["source"]
        source.insert(len(source), "x")

    def length(self) -> int:
        return len(self.b.ycells[0]["source"])

    def observe(self, callback: Callable[[], None]) -> Unsubscribe:
        doc = self.b.ydoc
        subscription = doc.observe(lambda _event: callback())
        return lambda: doc.unobserve(subscription)


@dataclass
class SyncDBPair:
    name: str
    server: BenchServer
    a: LiveNotebook
    b: LiveNotebook
    cell_id: str

    @property
    def key(self) -> dict[str, str]:
        return {"type": "cell", "id": self.cell_id}

    def edit(self) -> None:
        current = self.a.db.peek(("cell", self.cell_id)) or {}
        self.a.set({**self.key, "input": current.get("input", "") + "x"})
        self.a.commit()

    def length(self) -> int:
        record = self.b.db.peek(("cell", self.cell_id)) or {}
        return len(record.get("input", ""))

    def observe(self, callback: Callable[[], None]) -> Unsubscribe:
        return self.b.on_change(lambda _event: callback())


async def propagation_times(pair: EditPair, samples: int) -> list[float]:
    """Seconds from A's edit until B sees it, for ``samples`` edits one after another."""
    loop = asyncio.get_running_loop()
    times: list[float] = []
    for _ in range(samples):
        expected = pair.length() + 1
        arrived: asyncio.Future[float] = loop.create_future()

        def confirm(
            stamp: float, expected: int = expected, arrived: asyncio.Future[float] = arrived
        ) -> None:
            if not arrived.done() and pair.length() >= expected:
                arrived.set_result(stamp)

        def changed() -> None:
            # observers run inside B's transaction, where the document cannot be read: take
            # the time now, look at the document right after
            loop.call_soon(confirm, time.perf_counter())

        unsubscribe = pair.observe(changed)
        try:
            start = time.perf_counter()
            pair.edit()
            end = await asyncio.wait_for(arrived, timeout=10)
        finally:
            unsubscribe()
        times.append(end - start)
        await asyncio.sleep(PAUSE)
    return times


@dataclass
class Latency:
    seconds: list[float]
    #: CPU time of the pair's server over the measured edits (it serves this pair only)
    server_cpu: float

    @property
    def cpu_per_edit(self) -> float:
        return self.server_cpu / len(self.seconds)


async def edit_latency(pairs: list[EditPair]) -> dict[str, Latency]:
    """Warm every pair up, then measure them in turns (so drift hits all alike)."""
    for pair in pairs:
        await propagation_times(pair, WARMUP)
    cpu = {pair.name: pair.server.cpu_seconds() for pair in pairs}
    seconds: dict[str, list[float]] = {pair.name: [] for pair in pairs}
    for _ in range(ROUNDS):
        for pair in pairs:
            seconds[pair.name] += await propagation_times(pair, ROUND)
    return {
        pair.name: Latency(seconds[pair.name], pair.server.cpu_seconds() - cpu[pair.name])
        for pair in pairs
    }


# -- (b), (c) opening -------------------------------------------------------------------------


class Opener(Protocol):
    """Opens notebooks on one server with one kind of client, keeping them open."""

    name: str
    server: BenchServer

    async def open(self, path: str) -> float:
        """Open ``path``; seconds until the client holds every cell."""


@dataclass
class YNotebookOpener:
    name: str
    server: BenchServer
    clients: contextlib.AsyncExitStack

    async def open(self, path: str) -> float:
        http = await self.clients.enter_async_context(self.server.http())
        start = time.perf_counter()
        ynb = await self.clients.enter_async_context(
            ynotebook_client(self.server, http, path, cells=OPEN_CELLS)
        )
        elapsed = time.perf_counter() - start
        if not ynb.get_cell(OPEN_CELLS - 1)["outputs"]:
            raise AssertionError(f"{self.name}: {path} opened without its outputs")
        return elapsed


@dataclass
class SyncDBOpener:
    name: str
    server: BenchServer
    client: CocalcSyncClient

    async def open(self, path: str) -> float:
        start = time.perf_counter()
        notebook = await self.client.open(path)
        await notebook.wait_for(lambda nb: len(nb.db) > OPEN_CELLS, timeout=300)
        elapsed = time.perf_counter() - start
        if not notebook.get_one({"type": "cell", "id": f"cell-{OPEN_CELLS - 1}"})["output"]:
            raise AssertionError(f"{self.name}: {path} opened without its outputs")
        return elapsed

    async def get_records(self, path: str) -> float:
        """Seconds of a ``GET notebooks/{path}`` of an open notebook (the JSON of its records,
        which ``open`` asks for before it syncs the same records over the websocket)."""
        start = time.perf_counter()
        await self.client.request("GET", self.client.notebook_url(path))
        return time.perf_counter() - start


def open_paths() -> list[str]:
    return [f"open-{i}.ipynb" for i in range(OPEN_FILES)]


@dataclass
class OpenResult:
    seconds: list[float]
    rss_before: int
    rss_after: int
    cpu_seconds: float

    @property
    def mb_per_notebook(self) -> float:
        return (self.rss_after - self.rss_before) / OPEN_FILES / 1e6

    @property
    def cpu_per_notebook(self) -> float:
        return self.cpu_seconds / OPEN_FILES


async def open_in_turns(openers: list[Opener], template: Path) -> dict[str, OpenResult]:
    names = open_paths()
    for opener in openers:
        for name in names:
            opener.server.copy_file(template, name)
    rss = {o.name: o.server.rss() for o in openers}
    cpu = {o.name: o.server.cpu_seconds() for o in openers}
    seconds: dict[str, list[float]] = {o.name: [] for o in openers}
    for name in names:
        for opener in openers:
            seconds[opener.name].append(await opener.open(name))
    await asyncio.sleep(SETTLE)  # let deferred work (stores, autosave checks) finish
    return {
        o.name: OpenResult(
            seconds[o.name], rss[o.name], o.server.rss(), o.server.cpu_seconds() - cpu[o.name]
        )
        for o in openers
    }


# -- the run ----------------------------------------------------------------------------------


async def measure(stock: BenchServer, ours: BenchServer, ours_syncdb: BenchServer) -> list[Row]:
    async with contextlib.AsyncExitStack() as clients:
        for server in (stock, ours, ours_syncdb):
            server.write_file("latency.ipynb", small_notebook())

        async def ynotebooks(server: BenchServer) -> list[YNotebook]:
            http = await clients.enter_async_context(server.http())
            return [
                await clients.enter_async_context(ynotebook_client(server, http, "latency.ipynb"))
                for _ in range(2)
            ]

        sync_client = await clients.enter_async_context(
            CocalcSyncClient(ours_syncdb.url, ours_syncdb.token)
        )
        syncdb = [await sync_client.open("latency.ipynb") for _ in range(2)]
        pairs: list[EditPair] = [
            YNotebookPair("stock", stock, *await ynotebooks(stock)),
            YNotebookPair("ours", ours, *await ynotebooks(ours)),
            SyncDBPair("ours-syncdb", ours_syncdb, *syncdb, "cell-0"),
        ]
        progress(f"rtc: edit propagation, {len(pairs)} pairs")
        latency = await edit_latency(pairs)

        syncdb_opener = SyncDBOpener("ours-syncdb", ours_syncdb, sync_client)
        openers: list[Opener] = [
            YNotebookOpener("stock", stock, clients),
            YNotebookOpener("ours", ours, clients),
            syncdb_opener,
        ]
        with tempfile.TemporaryDirectory(prefix="bench-rtc-") as tmp:
            template = Path(tmp) / "template.ipynb"
            template.write_text(text_notebook(OPEN_CELLS, OPEN_BYTES), encoding="utf-8")
            file_mb = template.stat().st_size / 1e6
            progress(f"rtc: opening {OPEN_FILES} notebooks of {file_mb:.1f} MB on each server")
            opened = await open_in_turns(openers, template)
        get_times = [await syncdb_opener.get_records(path) for path in open_paths()]
    return _rows(latency, opened, get_times, file_mb)


#: our client kinds; stock is always measured with YNotebook clients
VARIANTS = {
    "ours": "YNotebook clients",
    "ours-syncdb": "stock YNotebook vs our SyncDB clients",
}
HOLDS = {
    "ours": "ours holds the SyncDB and its YNotebook projection",
    "ours-syncdb": "ours holds the SyncDB only (no projection is built)",
}
HOW = {
    "ours": "ours via the YNotebook projection",
    "ours-syncdb": "ours via CocalcSyncClient and room/syncdb",
}


@dataclass
class Metric:
    title: str
    unit: str
    value: Callable[[str], float]  # server name -> value
    what: str
    detail: Callable[[str], str] = lambda _name: ""  # notes for one of our variants


def _rows(
    latency: dict[str, Latency],
    opened: dict[str, OpenResult],
    get_times: list[float],
    file_mb: float,
) -> list[Row]:
    edits = (
        f"{len(latency['stock'].seconds)} edits after {WARMUP} warm-up, "
        f"one per {ms(PAUSE):.0f} ms, pairs in turns"
    )
    opening = (
        f"{OPEN_CELLS} cells, {OPEN_BYTES / 1e6:.0f} MB stream outputs ({file_mb:.1f} MB file), "
        f"cold, {OPEN_FILES} fresh files per server"
    )

    def spread(name: str) -> str:
        values = opened[name].seconds
        return f"min–max {name} {min(values):.2f}–{max(values):.2f} s"

    def open_detail(name: str) -> str:
        notes = f"target ≥ 10×; {spread('stock')}, {spread(name)}"
        if name == "ours-syncdb":
            notes += (
                f"; a GET of an open notebook alone (the JSON of all records, of which open "
                f"uses only path and file_id) takes {ms(median(get_times)):.0f} ms"
            )
        return notes

    def rss(name: str) -> str:
        result = opened[name]
        return f"{name} {result.rss_before / 1e6:.0f} → {result.rss_after / 1e6:.0f} MB"

    metrics = [
        Metric(
            "edit A→B, median",
            "ms",
            lambda name: ms(median(latency[name].seconds)),
            edits,
        ),
        Metric(
            "edit A→B, p90",
            "ms",
            lambda name: ms(percentile(latency[name].seconds, 90)),
            edits,
        ),
        Metric(
            "server CPU per edit",
            "ms",
            lambda name: ms(latency[name].cpu_per_edit),
            "user+system CPU of the pair's server over the measured edits / edits",
        ),
        Metric(
            "open notebook, median",
            "s",
            lambda name: median(opened[name].seconds),
            f"{opening}; first request → every cell in the client's doc",
            open_detail,
        ),
        Metric(
            "server CPU per cold open",
            "ms",
            lambda name: ms(opened[name].cpu_per_notebook),
            f"user+system CPU of the server over the opens above (+{SETTLE:.0f} s) / "
            f"{OPEN_FILES}; steadier than wall time on a shared machine",
        ),
        Metric(
            "server memory per open notebook",
            "MB",
            lambda name: opened[name].mb_per_notebook,
            f"RSS growth over the opens above / {OPEN_FILES}, all still open",
            lambda name: f"RSS {rss('stock')}, {rss(name)}; {HOLDS[name]}",
        ),
    ]
    rows = []
    for metric in metrics:
        for name, clients in VARIANTS.items():
            notes = "; ".join(n for n in (metric.what, HOW[name], metric.detail(name)) if n)
            rows.append(
                row(
                    f"{metric.title} ({clients})",
                    metric.value("stock"),
                    metric.value(name),
                    metric.unit,
                    notes,
                )
            )
    return rows


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-servers-") as tmp:
        servers = [
            BenchServer(stock_stack(), Path(tmp) / "stock"),
            BenchServer(ours_stack(), Path(tmp) / "ours"),
            BenchServer(ours_stack(), Path(tmp) / "ours-syncdb"),
        ]
        with running(servers):
            return asyncio.run(measure(*servers))


if __name__ == "__main__":
    main(run)
