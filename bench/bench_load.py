"""Load: many collaborators at once, stock and ours side by side.

(a) **One busy notebook**: ``TYPISTS`` JupyterLab clients (YNotebook over the collaboration
room) on one notebook, each appending a token to its own cell every ``INTERVAL`` s for
``SECONDS`` s, and one observer client. Reported: the edit rate the server delivered to the
observer (held = offered when nothing falls behind), the propagation time of each token (from
the typist's edit to the observer's document showing it: p50 and p99), the server's CPU
(fraction of one core) and its peak RSS. On ours also with SyncDB clients (no stock
counterpart: the stock server has no such room).

(b) **Many notebooks**: ``NOTEBOOKS`` notebooks × (4 typists + 1 observer), the same figures.

(c) **A client that never reads**: it joins a notebook's room, completes the handshake and then
reads nothing, while another client appends ``CHUNK`` bytes every ``CHUNK_INTERVAL`` s for
``STALL_SECONDS`` s. Reported: the server's RSS growth over that time, with the stalled client
and without it (a fresh notebook on the same server). Ours closes a client whose send queue
passes ``send_queue_bytes`` (default 16 MiB); stock buffers for it.

``BENCH_QUICK=1`` (``python bench/run.py --quick load``) shortens every scenario to seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clients import ynotebook_client
from harness import BenchServer, ours_stack, running, stock_stack
from notebooks import small_notebook
from pycrdt import Map, Text
from report import Row, main, median, ms, percentile, progress, row
from samplers import RssSampler

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook

QUICK = os.environ.get("BENCH_QUICK") == "1"
TYPISTS = 10 if QUICK else 50
SECONDS = 5.0 if QUICK else 30.0
INTERVAL = 0.25  # a token every 250 ms per typist: 4 keys a second
NOTEBOOKS = 5 if QUICK else 20
CHUNK = 100_000
CHUNK_INTERVAL = 0.05
STALL_SECONDS = 5.0 if QUICK else 20.0

TOKEN = re.compile(r"<(\d+):(\d+)>")


@dataclass
class Propagation:
    """Send times of tokens, and when the observer saw them."""

    sent: dict[tuple[int, int], float] = field(default_factory=dict)
    seen: dict[tuple[int, int], float] = field(default_factory=dict)

    def token(self, typist: int, n: int) -> str:
        self.sent[(typist, n)] = time.perf_counter()
        return f"<{typist}:{n}>"

    def observe_text(self, text: str, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        for match in TOKEN.finditer(text):
            self.seen.setdefault((int(match[1]), int(match[2])), now)

    def delays(self) -> list[float]:
        return [self.seen[k] - t for k, t in self.sent.items() if k in self.seen]


@dataclass
class LoadResult:
    offered: float = 0.0  # edits per second the typists made
    delivered: float = 0.0  # edits per second the observer received within the run
    delays: list[float] = field(default_factory=list)
    lost: int = 0  # not seen by the observer 2 s after the typing stopped
    cpu: float = 0.0  # fraction of one core
    rss_peak: int = 0


#: a typist: its number, the event that stops it, the barrier it waits at once it is connected
Typist = Callable[[int, asyncio.Event, asyncio.Barrier], Awaitable[None]]


async def pace(stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), INTERVAL)


def ynotebook_typist(server: BenchServer, path: str, stats: Propagation) -> Typist:
    async def type_tokens(me: int, stop: asyncio.Event, connected: asyncio.Barrier) -> None:
        async with server.http() as http, ynotebook_client(server, http, path) as ynb:
            with ynb.ydoc.transaction():
                ynb.ycells.append(Map({"id": f"t{me}", "cell_type": "code", "source": Text()}))
            source = ynb.ycells[len(ynb.ycells) - 1]["source"]
            await connected.wait()
            n = 0
            while not stop.is_set():
                source.insert(len(source), stats.token(me, n))
                n += 1
                await pace(stop)

    return type_tokens


def syncdb_typist(server: BenchServer, path: str, stats: Propagation) -> Typist:
    async def type_tokens(me: int, stop: asyncio.Event, connected: asyncio.Barrier) -> None:
        client = CocalcSyncClient(server.url, server.token)
        try:
            nb = await client.open(path)
            key = {"type": "cell", "id": f"t{me}"}
            nb.set({**key, "cell_type": "code", "input": "", "pos": 1000 + me})
            nb.commit()
            await connected.wait()
            n = 0
            while not stop.is_set():
                current = nb.get_one(key)["input"]
                nb.set({**key, "input": current + stats.token(me, n)})
                nb.commit()
                n += 1
                await pace(stop)
        finally:
            await client.close()

    return type_tokens


@contextlib.asynccontextmanager
async def ynotebook_observer(server: BenchServer, path: str, stats: Propagation):
    async with server.http() as http, ynotebook_client(server, http, path) as ynb:
        loop = asyncio.get_running_loop()

        def scan_cells(now: float) -> None:
            for cell in ynb.ycells:
                stats.observe_text(str(cell["source"]), now)

        def changed(events: Any) -> None:
            for event in events:
                for op in getattr(event, "delta", None) or []:
                    inserted = op.get("insert") if isinstance(op, dict) else None
                    if isinstance(inserted, str):
                        stats.observe_text(inserted)
                    elif isinstance(inserted, list):
                        # a new cell arrived with its first token: read it after the
                        # transaction (the document cannot be read inside it)
                        loop.call_soon(scan_cells, time.perf_counter())

        ynb.ycells.observe_deep(changed)
        yield ynb


@contextlib.asynccontextmanager
async def syncdb_observer(server: BenchServer, path: str, stats: Propagation):
    client = CocalcSyncClient(server.url, server.token)
    try:
        nb: LiveNotebook = await client.open(path)

        def changed(event: Any) -> None:
            for key, change in event.changes.items():
                if change.action == "add":
                    record = nb.db.peek(key) or {}
                    stats.observe_text(record.get("input", ""))
                for op in change.text_deltas.get("input", []):
                    if isinstance(op.get("insert"), str):
                        stats.observe_text(op["insert"])

        nb.on_change(changed)
        yield nb
    finally:
        await client.close()


async def typing_load(
    server: BenchServer, paths: list[str], per_notebook: int, kind: str
) -> LoadResult:
    """``per_notebook`` typists on each of ``paths`` for ``SECONDS``; one observer each."""
    typist_of = ynotebook_typist if kind == "ynotebook" else syncdb_typist
    observer_of = ynotebook_observer if kind == "ynotebook" else syncdb_observer
    stats = Propagation()
    stop = asyncio.Event()
    connected = asyncio.Barrier(len(paths) * per_notebook + 1)
    async with contextlib.AsyncExitStack() as observers:
        for path in paths:
            await observers.enter_async_context(observer_of(server, path, stats))
        typists = [
            asyncio.create_task(
                typist_of(server, path, stats)(i * per_notebook + j, stop, connected)
            )
            for i, path in enumerate(paths)
            for j in range(per_notebook)
        ]
        await connected.wait()  # the load starts when every typist is in
        cpu = server.cpu_seconds()
        with RssSampler(server) as rss:
            start = time.perf_counter()
            await asyncio.sleep(SECONDS)  # the load's duration
            stop.set()
            elapsed = time.perf_counter() - start
            await asyncio.gather(*typists)
        cpu = server.cpu_seconds() - cpu
        within = sum(1 for k, t in stats.seen.items() if t - start <= elapsed)
        # the stragglers: a little time to arrive, then whatever is missing is lost
        await asyncio.sleep(2.0)
    delays = stats.delays()
    return LoadResult(
        offered=len(stats.sent) / elapsed,
        delivered=within / elapsed,
        delays=delays,
        lost=len(stats.sent) - len(delays),
        cpu=cpu / elapsed,
        rss_peak=rss.peak,
    )


# -- (c) a client that never reads ------------------------------------------------------------


async def stalled_websocket(server: BenchServer, path: str) -> asyncio.StreamWriter:
    """A websocket that completes the handshake and then reads nothing at all."""
    url = urlsplit(server.ws_url(path))
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
        f"Authorization: token {server.token}\r\n\r\n".encode()
    )
    status = await reader.readline()
    if b" 101 " not in status:
        raise RuntimeError(f"{server.name}: handshake refused: {status!r}")
    await reader.readuntil(b"\r\n\r\n")
    return writer


async def room_path(server: BenchServer, path: str) -> str:
    async with server.http() as http:
        response = await http.put(
            f"/api/collaboration/session/{path}", json={"format": "json", "type": "notebook"}
        )
        session = response.raise_for_status().json()
    room = f"json:notebook:{session['fileId']}"
    return f"/api/collaboration/room/{room}?sessionId={session['sessionId']}"


async def rss_growth_while_writing(server: BenchServer, path: str, *, stalled: bool) -> int:
    """Server RSS growth while a writer appends to ``path`` (with a never-reading client)."""
    writer = await stalled_websocket(server, await room_path(server, path)) if stalled else None
    try:
        async with server.http() as http, ynotebook_client(server, http, path) as ynb:
            source = ynb.ycells[0]["source"]
            before = server.rss()
            with RssSampler(server) as rss:
                deadline = time.perf_counter() + STALL_SECONDS
                while time.perf_counter() < deadline:
                    source.insert(len(source), os.urandom(CHUNK // 2).hex())
                    await asyncio.sleep(CHUNK_INTERVAL)  # the writer's pace
            return rss.peak - before
    finally:
        if writer is not None:
            writer.close()


# -- the run ----------------------------------------------------------------------------------


async def measure(stock: BenchServer, ours: BenchServer) -> list[Row]:
    rows: list[Row] = []
    one = {s.name: s.write_file("busy.ipynb", small_notebook(1)) for s in (stock, ours)}
    many = {
        s.name: [s.write_file(f"many-{i}.ipynb", small_notebook(1)) for i in range(NOTEBOOKS)]
        for s in (stock, ours)
    }
    results: dict[str, LoadResult] = {}
    for server in (stock, ours):
        progress(f"load: {TYPISTS} typists on one notebook, {server.name}")
        results[f"one {server.name}"] = await typing_load(
            server, [one[server.name]], TYPISTS, "ynotebook"
        )
    progress(f"load: {TYPISTS} SyncDB typists on one notebook, ours")
    ours.write_file("busy-syncdb.ipynb", small_notebook(1))
    results["one syncdb"] = await typing_load(ours, ["busy-syncdb.ipynb"], TYPISTS, "syncdb")
    for server in (stock, ours):
        progress(f"load: {NOTEBOOKS} notebooks x 5 clients, {server.name}")
        results[f"many {server.name}"] = await typing_load(
            server, many[server.name], 4, "ynotebook"
        )
    growth: dict[str, tuple[int, int]] = {}
    for server in (stock, ours):
        progress(f"load: a never-reading client, {server.name}")
        server.write_file("quiet.ipynb", small_notebook(1))
        server.write_file("stalled.ipynb", small_notebook(1))
        without = await rss_growth_while_writing(server, "quiet.ipynb", stalled=False)
        with_stalled = await rss_growth_while_writing(server, "stalled.ipynb", stalled=True)
        growth[server.name] = (without, with_stalled)

    scenarios = {
        "one": f"{TYPISTS} JupyterLab clients typing into one notebook, {SECONDS:.0f} s",
        "many": f"{NOTEBOOKS} notebooks × 4 JupyterLab typists + 1 observer, {SECONDS:.0f} s",
    }
    for scenario, what in scenarios.items():
        s, o = results[f"{scenario} stock"], results[f"{scenario} ours"]
        rows += load_rows(what, s, o)
    syncdb = results["one syncdb"]
    rows += load_rows(
        f"{TYPISTS} SyncDB clients typing into one notebook (ours only)", None, syncdb
    )
    for name in ("stock", "ours"):
        progress(f"load: {name} RSS growth {growth[name]}")
    stalled_cost = {name: (with_ - without) / 1e6 for name, (without, with_) in growth.items()}
    rows.append(
        row(
            "server RSS held for a never-reading client",
            max(stalled_cost["stock"], 0.0),
            max(stalled_cost["ours"], 0.1),
            "MB",
            f"peak RSS growth while {CHUNK // 1000} kB are appended every "
            f"{ms(CHUNK_INTERVAL):.0f} ms for {STALL_SECONDS:.0f} s, with that client minus "
            f"without it (stock {growth['stock'][1] / 1e6:.0f} − {growth['stock'][0] / 1e6:.0f}, "
            f"ours {growth['ours'][1] / 1e6:.0f} − {growth['ours'][0] / 1e6:.0f}); ours closes it "
            "past send_queue_bytes",
        )
    )
    return rows


def load_rows(what: str, stock: LoadResult | None, ours: LoadResult) -> list[Row]:
    def value(result: LoadResult | None, of: Callable[[LoadResult], float]) -> float | None:
        return None if result is None else of(result)

    lost = f"offered {ours.offered:.0f} edits/s; not seen 2 s after the end: ours {ours.lost}" + (
        f", stock {stock.lost}" if stock else ""
    )
    return [
        row(
            f"{what}: edits/s delivered",
            value(stock, lambda r: r.delivered),
            ours.delivered,
            "edits/s",
            lost,
            lower_is_better=False,
        ),
        row(
            f"{what}: propagation p50",
            value(stock, lambda r: ms(median(r.delays))),
            ms(median(ours.delays)),
            "ms",
            "typist's edit → the observer's document",
        ),
        row(
            f"{what}: propagation p99",
            value(stock, lambda r: ms(percentile(r.delays, 99))),
            ms(percentile(ours.delays, 99)),
            "ms",
        ),
        row(f"{what}: server CPU", value(stock, lambda r: r.cpu), ours.cpu, "cores"),
        row(
            f"{what}: server peak RSS",
            value(stock, lambda r: r.rss_peak / 1e6),
            ours.rss_peak / 1e6,
            "MB",
        ),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        servers = [
            BenchServer(stock_stack(), Path(tmp) / "stock"),
            BenchServer(ours_stack(), Path(tmp) / "ours"),
        ]
        with running(servers):
            return asyncio.run(measure(*servers))


if __name__ == "__main__":
    main(run)
