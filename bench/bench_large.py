"""A large notebook (2,000 cells, ~50 MB of outputs) opened in a JupyterLab-like client, stock
and ours side by side.

Each stack gets a server of its own and a fresh copy of the notebook
(``notebooks.mixed_notebook``: a third each of stream text, HTML and base64 PNGs). A YNotebook
client (``clients.ynotebook_client``, what JupyterLab's frontend does: ``PUT session``, then the
room) opens it cold; measured:

* **time to first sync**: from the ``PUT`` until the client's document holds every cell;
* **first-sync bytes**: websocket payload the client received meanwhile;
* **server RSS growth** and **server CPU time** from before the open until ``SETTLE`` s after it;
* **store growth**: the server's SQLite store (``samplers.store_size``: pages in use, WAL
  included) from before the open until ``SETTLE`` s after it; the notes add the database + WAL
  files on disk. Target: ≤ 1.2× the file;
* **the file**: whether opening rewrote it (its bytes changed) when nothing was edited;
* **closes**: the client must stay connected through the first sync (a close ends the scenario
  as a failure); the server log is searched for a slow-client close.

The stacks run one after the other, each alone on the machine (the notebook is big enough that
two opens at once measure the machine more than the servers).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from clients import ByteCount, ynotebook_client
from harness import BenchServer, ours_stack, running, stock_stack
from notebooks import mixed_notebook
from report import Row, failed_row, load_average, main, progress, row
from samplers import StoreSize, store_size

ALIASES = ("big", "large-notebook")

CELLS = 2000
#: per output: ~22.5 kB each of text, HTML, PNG (a third of the cells each): ~50 MB in all
OUTPUT_BYTES = 22_500
SETTLE = 5.0
TIMEOUT = 600.0
SLOW_CLIENT_LOG = "closing a room client that fell"


@dataclass
class LargeOpen:
    seconds: float
    received: ByteCount
    rss_growth: int
    cpu_seconds: float
    store: StoreSize
    file_bytes: int
    rewritten: bool
    file_bytes_after: int
    slow_client_closes: int


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _store(server: BenchServer) -> StoreSize:
    if not server.store_path.exists():  # stock creates its store on the first open
        return StoreSize(0, 0)
    return store_size(server.store_path)


async def open_large(server: BenchServer, name: str) -> LargeOpen:
    path = server.root / name
    digest, size = _digest(path), path.stat().st_size
    closes_before = server.log().count(SLOW_CLIENT_LOG)
    async with server.http() as http:
        rss, cpu, store = server.rss(), server.cpu_seconds(), _store(server)
        received = ByteCount()
        start = time.perf_counter()
        async with (
            asyncio.timeout(TIMEOUT),
            ynotebook_client(server, http, name, cells=CELLS, count=received),
        ):
            seconds = time.perf_counter() - start
            await asyncio.sleep(SETTLE)  # whatever the open scheduled (a save, a checkpoint)
            result = LargeOpen(
                seconds,
                received,
                server.rss() - rss,
                server.cpu_seconds() - cpu,
                _store(server) - store,
                size,
                _digest(path) != digest,
                path.stat().st_size,
                server.log().count(SLOW_CLIENT_LOG) - closes_before,
            )
    return result


def _rows(stock: LargeOpen, ours: LargeOpen, load: str) -> list[Row]:
    mb = 1e6
    what = f"a {CELLS}-cell notebook, {ours.file_bytes / mb:.1f} MB file, opened cold"

    def file_note(result: LargeOpen) -> str:
        if not result.rewritten:
            return "file untouched"
        return (
            f"file rewritten ({result.file_bytes / mb:.1f} → {result.file_bytes_after / mb:.1f} MB)"
        )

    notes = (
        f"{what}; stock: {file_note(stock)}, ours: {file_note(ours)}; slow-client closes in "
        f"the log: stock {stock.slow_client_closes}, ours {ours.slow_client_closes}; load {load}"
    )
    return [
        row(
            f"large: open {CELLS} cells, time to first sync",
            stock.seconds,
            ours.seconds,
            "s",
            notes,
        ),
        row(
            "large: first-sync bytes to the client",
            stock.received.bytes / mb,
            ours.received.bytes / mb,
            "MB",
            f"{what}; messages: stock {stock.received.frames}, ours {ours.received.frames}",
        ),
        row(
            "large: server RSS growth",
            stock.rss_growth / mb,
            ours.rss_growth / mb,
            "MB",
            f"{what}; from before the open until {SETTLE:g} s after it, the client connected",
        ),
        row(
            "large: server CPU per open",
            stock.cpu_seconds,
            ours.cpu_seconds,
            "s",
            f"{what}; user + system, all threads, until {SETTLE:g} s after the first sync",
        ),
        row(
            "large: store growth",
            stock.store.logical / mb,
            ours.store.logical / mb,
            "MB",
            f"{what}; pages in use, WAL included; target ≤ 1.2× the file "
            f"(ours {ours.store.logical / ours.file_bytes:.2f}×, stock "
            f"{stock.store.logical / stock.file_bytes:.2f}×); database + WAL files: stock "
            f"{stock.store.files / mb:.1f} MB, ours {ours.store.files / mb:.1f} MB",
        ),
    ]


def run() -> list[Row]:
    text = mixed_notebook(CELLS, text_bytes=OUTPUT_BYTES, png_bytes=OUTPUT_BYTES)
    load = load_average()
    results: dict[str, LargeOpen] = {}
    errors: dict[str, Exception] = {}
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        for stack in (stock_stack(), ours_stack()):
            server = BenchServer(stack, Path(tmp) / stack.name)
            with running([server]):
                server.write_file("large.ipynb", text)
                progress(f"large: {stack.name} (load {load_average()})")
                try:
                    results[stack.name] = asyncio.run(open_large(server, "large.ipynb"))
                # a failed open is the scenario's row, whatever the failure
                except Exception as error:
                    progress(f"large: {stack.name} failed: {type(error).__name__}: {error}")
                    errors[stack.name] = error
    if errors:
        reason = "; ".join(f"{name}: {type(e).__name__}: {e}" for name, e in errors.items())
        return [failed_row(f"large: open {CELLS} cells", RuntimeError(reason))]
    return _rows(results["stock"], results["ours"], f"{load} → {load_average()}")


if __name__ == "__main__":
    main(run)
