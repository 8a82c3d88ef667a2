"""The store backends side by side: ours on SQLite and ours on PostgreSQL, in one run.

``python bench/stores.py`` (``BENCH_QUICK=1``: shorter) starts a PostgreSQL cluster of its own
(``tests/postgres.py``: Debian's postgresql, a unix socket in a temporary folder, ``fsync`` on)
and two servers of this extension, identical but for ``CocalcSync.store_url``, and measures on
each, in turns:

* **edit latency A→B**: a SyncDB client's edit until a second client sees it (each edit is
  logged, and committed, before it is sent);
* **warm 1+1**: a run request until the other client sees ``2`` (``bench_execute``);
* **opening a 300-cell notebook** (10 MB of outputs) never opened before: first request until
  the client holds every cell (the whole notebook is logged as the document's first version);
* **the flood's log bytes**: a cell printing a million lines; the bytes of updates and
  snapshots logged for it (the same query on both: ``SUM(LENGTH(data))``), and the time until
  the cell is idle;
* **50 clients**: 50 SyncDB typists on one notebook, 4 edits a second each, for
  ``bench_load.SECONDS``; the edits per second delivered to an observer, and their p50/p99.

The table's first column is SQLite, the second PostgreSQL; the ratio is SQLite's over
PostgreSQL's (above 1: PostgreSQL is faster or smaller).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent / "tests")]

import bench_load  # noqa: E402 - needs bench/ on sys.path first
from bench_execute import RESULT_PROBE, SyncDBVariant  # noqa: E402
from bench_flood import CELL_ID as FLOOD_CELL  # noqa: E402
from bench_flood import CODE as FLOOD_CODE  # noqa: E402
from bench_rtc import OPEN_BYTES, OPEN_CELLS, SyncDBOpener, SyncDBPair, propagation_times  # noqa: E402
from clients import cell_record, warm_session_kernel  # noqa: E402
from harness import BenchServer, ours_stack, running  # noqa: E402
from notebooks import code_notebook, small_notebook, text_notebook  # noqa: E402
from postgres import PostgresCluster, unavailable_reason  # noqa: E402
from report import Row, fmt, median, ms, percentile, progress, row  # noqa: E402

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
EDITS = 50 if QUICK else 200
RUNS = 20 if QUICK else 100
RUN_WARMUP = 5
OPENS = 2 if QUICK else 5
TYPISTS = 50
FLOOD_TIMEOUT = 600.0


def logged_bytes(server: BenchServer, url: str | None) -> int:
    """Bytes of every logged update and snapshot in the server's store."""
    query = (
        "SELECT (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM changes) + "
        "(SELECT COALESCE(SUM(LENGTH(data)), 0) FROM snapshots)"
    )
    if url is not None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            return int(conn.execute(query).fetchone()[0])
    with contextlib.closing(
        sqlite3.connect(f"file:{server.store_path}?mode=ro", uri=True, timeout=30)
    ) as conn:
        return int(conn.execute(query).fetchone()[0])


async def edit_latency(server: BenchServer) -> list[float]:
    path = server.write_file("edits.ipynb", small_notebook())
    async with (
        CocalcSyncClient(server.url, server.token) as one,
        CocalcSyncClient(server.url, server.token) as two,
    ):
        a, b = await one.open(path), await two.open(path)
        pair = SyncDBPair("edits", server, a, b, "cell-0")
        await propagation_times(pair, 10)  # warm-up
        return await propagation_times(pair, EDITS)


async def warm_one_plus_one(server: BenchServer) -> list[float]:
    path = server.write_file("one.ipynb", code_notebook([("one", "1+1")]))
    async with (
        CocalcSyncClient(server.url, server.token) as one,
        CocalcSyncClient(server.url, server.token) as two,
    ):
        variant = SyncDBVariant("1+1", server, await one.open(path), await two.open(path))
        for _ in range(RUN_WARMUP):
            await variant.sample(RESULT_PROBE)
        return [await variant.sample(RESULT_PROBE) for _ in range(RUNS)]


async def open_300(server: BenchServer) -> list[float]:
    text = text_notebook(OPEN_CELLS, OPEN_BYTES)
    times = []
    for n in range(OPENS):
        path = server.write_file(f"open-{n}.ipynb", text)
        async with CocalcSyncClient(server.url, server.token) as client:
            times.append(await SyncDBOpener("open", server, client).open(path))
    return times


async def flood(server: BenchServer, url: str | None) -> tuple[int, float]:
    path = server.write_file("flood.ipynb", code_notebook([(FLOOD_CELL, FLOOD_CODE)]))
    async with server.http() as http, CocalcSyncClient(server.url, server.token) as client:
        notebook: LiveNotebook = await client.open(path)
        await warm_session_kernel(server, http, path)
        before = logged_bytes(server, url)
        start = time.perf_counter()
        notebook.set({"type": "cell", "id": FLOOD_CELL, "state": "start"})
        notebook.commit()

        def idle(nb: LiveNotebook) -> bool:
            record = cell_record(nb, FLOOD_CELL)
            return record.get("state") == "idle" and record.get("end") is not None

        await notebook.wait_for(idle, timeout=FLOOD_TIMEOUT)
        elapsed = time.perf_counter() - start
        await asyncio.sleep(2.0)  # the run's squash and the last snapshot land after idle
    return logged_bytes(server, url) - before, elapsed


async def fifty_clients(server: BenchServer) -> bench_load.LoadResult:
    path = server.write_file("load.ipynb", small_notebook())
    return await bench_load.typing_load(server, [path], TYPISTS, "syncdb")


async def measure(servers: dict[str, BenchServer], urls: dict[str, str | None]) -> list[Row]:
    results: dict[str, dict[str, Any]] = {name: {} for name in servers}
    steps = [
        ("edit latency", lambda s, u: edit_latency(s)),
        ("1+1", lambda s, u: warm_one_plus_one(s)),
        ("open", lambda s, u: open_300(s)),
        ("flood", flood),
        ("load", lambda s, u: fifty_clients(s)),
    ]
    for step, measure_one in steps:
        for name, server in servers.items():
            progress(f"stores: {step} on {name}")
            results[name][step] = await measure_one(server, urls[name])
    sq, pg = results["sqlite"], results["postgresql"]

    def both(step: str, fn: Any) -> tuple[float, float]:
        return fn(sq[step]), fn(pg[step])

    def p99(values: list[float]) -> float:
        return percentile(values, 99)

    rows = [
        row(
            "edit latency A→B, median",
            *both("edit latency", lambda v: ms(median(v))),
            "ms",
            f"{EDITS} edits; p99 {fmt(ms(p99(sq['edit latency'])))} / "
            f"{fmt(ms(p99(pg['edit latency'])))} ms",
        ),
        row(
            "warm 1+1, median",
            *both("1+1", lambda v: ms(median(v))),
            "ms",
            f"{RUNS} runs; p99 {fmt(ms(p99(sq['1+1'])))} / {fmt(ms(p99(pg['1+1'])))} ms",
        ),
        row(
            f"open a {OPEN_CELLS}-cell notebook (first time), median",
            *both("open", median),
            "s",
            f"{OPENS} files, {OPEN_BYTES // 10**6} MB of outputs each",
        ),
        row(
            "flood (10⁶ lines): bytes logged",
            *both("flood", lambda v: v[0] / 1e6),
            "MB",
            f"changes + snapshots; until idle {sq['flood'][1]:.1f} / {pg['flood'][1]:.1f} s",
        ),
        row(
            f"{TYPISTS} clients typing: edits delivered",
            *both("load", lambda r: r.delivered),
            "edits/s",
            f"offered {sq['load'].offered:.0f} / {pg['load'].offered:.0f}; p50 "
            f"{fmt(ms(median(sq['load'].delays)))} / {fmt(ms(median(pg['load'].delays)))} ms, "
            f"p99 {fmt(ms(p99(sq['load'].delays)))} / {fmt(ms(p99(pg['load'].delays)))} ms; "
            f"lost {sq['load'].lost} / {pg['load'].lost}",
            lower_is_better=False,
        ),
    ]
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | SQLite | PostgreSQL | unit | ratio (SQLite/PostgreSQL) | notes |",
        "|---|---:|---:|---|---:|---|",
    ]
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        lines.append(
            f"| {r['benchmark']} | {fmt(r['stock'])} | {fmt(r['ours'])} | {r['unit']} | "
            f"{ratio} | {r['notes']} |"
        )
    return "\n".join(lines)


def run() -> list[Row]:
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"bench/stores.py: {reason}")
    cluster = PostgresCluster()
    try:
        url = cluster.create_database()
        with tempfile.TemporaryDirectory(prefix="bench-stores-") as tmp:
            servers = {
                "sqlite": BenchServer(ours_stack(), Path(tmp) / "sqlite"),
                "postgresql": BenchServer(
                    ours_stack(),
                    Path(tmp) / "postgresql",
                    config={"CocalcSync": {"store_url": url}},
                ),
            }
            with running(list(servers.values())):
                return asyncio.run(measure(servers, {"sqlite": None, "postgresql": url}))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    print(table(run()))
