"""Notebook actions and kernel questions from the Python client (no stock counterpart).

One ``jupyter server`` of this package (``harness.BenchServer``) with a notebook of
``CELLS`` code cells, opened by ``jupyter_cocalc_sync.client``. Measured per call, as a script
sees it: ``insert_cell`` and ``move_cell`` in the middle of the notebook (the REST action,
its commit, and the round trip that brings it into the client's replica), then ``complete``
(``import o``) and ``inspect`` (``len``) on the notebook's kernel once it runs. The server
orders the cells on every positional action (one pass over the records, on the event loop):
that pass is what grows with the notebook.

``python bench/bench_actions.py`` prints the table; ``run()`` returns the rows.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nbformat
from harness import BenchServer, ours_stack, running
from report import Row, load_average, main, median, ms, percentile, progress, row

from jupyter_cocalc_sync.client import CocalcSyncClient

ALIASES = ("action",)
CELLS = 1000
REPEATS = 40


def notebook(cells: int) -> str:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    nb.cells = [nbformat.v4.new_code_cell(f"x{i} = {i}", id=f"cell-{i}") for i in range(cells)]
    return nbformat.writes(nb)


async def timed(call: Callable[[int], Awaitable[Any]], repeats: int = REPEATS) -> list[float]:
    durations = []
    for i in range(repeats):
        start = time.perf_counter()
        await call(i)
        durations.append(time.perf_counter() - start)
    return durations


async def measure(server: BenchServer) -> list[Row]:
    path = server.write_file("actions.ipynb", notebook(CELLS))
    client = CocalcSyncClient(server.url, server.token)
    try:
        nb = await client.open(path)
        middle = f"cell-{CELLS // 2}"
        progress(f"actions: insert_cell ×{REPEATS} in {CELLS} cells")
        inserts = await timed(lambda _: nb.insert_cell(1, middle, input="y = 1"))
        moves = await timed(lambda i: nb.move_cell("cell-10", 1 if i % 2 == 0 else -1))
        start = time.perf_counter()
        await nb.complete("import o")  # starts the notebook's kernel
        first = time.perf_counter() - start
        completes = await timed(lambda _: nb.complete("import o"))
        inspects = await timed(lambda _: nb.inspect("len"))
    finally:
        await client.close()
    notes = f"{CELLS} cells, {REPEATS} calls, load {load_average()}"
    rows = [
        (f"insert_cell in a {CELLS}-cell notebook, client call → in the replica", inserts),
        (f"move_cell in a {CELLS}-cell notebook, client call → in the replica", moves),
        ("complete `import o`, kernel running", completes),
        ("inspect `len`, kernel running", inspects),
    ]
    result = [
        row(
            f"{name}, median (p90)",
            None,
            ms(median(d)),
            "ms",
            f"p90 {ms(percentile(d, 90)):.1f} ms; {notes}",
        )
        for name, d in rows
    ]
    result.append(row("first complete (starts the kernel, no pool)", None, ms(first), "ms", notes))
    return result


def run() -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-actions-"))
    try:
        server = BenchServer(ours_stack(), workdir / "ours")
        with running([server]):
            return asyncio.run(measure(server))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(run)
