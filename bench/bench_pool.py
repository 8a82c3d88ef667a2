"""Kernel pool: opening a notebook until its first cell has run, stock kernel starts vs pooled.

Real ``jupyter server`` subprocesses of this package's stack (``harness.BenchServer``), alike
but for the kernel manager: jupyter_server's stock ``AsyncMappingKernelManager`` against our
``PoolingKernelManager``. Measured is what a browser does: ``POST /api/sessions`` for a new
notebook, open the kernel's ``/api/kernels/{id}/channels`` websocket, send ``execute_request``
``1+1``, wait for its ``execute_reply``. Stock and pooled measurements alternate, so machine
noise hits both alike.

* warm: the pool (size 1) is full before each pooled repetition — what it is for. Its refill
  waits 1 s after a claim, so no kernel boots next to the measured open. Ours's kernel
  websocket is the package's (TCP_NODELAY, and a pooled kernel's first websocket skips
  jupyter_server's kernel_info round trips: ``pool/head_start.py``); stock's is jupyter_server's
  as is, and again with TCP_NODELAY on its server end (``server_plugins.NoDelayOnRequest``):
  with Nagle's algorithm every execution over that websocket waits ~40 ms for a delayed ACK;
* the pool as shipped (no ``KernelPool`` setting), as people actually open notebooks:
  * spaced: one open every ``SPACING_S`` seconds, each started on schedule whether or not the
    previous one has finished;
  * back-to-back: each open as soon as the previous one has run its cell;
  * burst: ``BURST`` notebooks opened at once — first on a pool nobody has asked much of
    (cold), then, ``ROUNDS`` times, after the pool has settled at the size that demand grew
    it to and stayed idle for ``IDLE_S`` seconds.

``python bench/bench_pool.py`` prints the table; ``run()`` returns the rows (``bench/run.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from clients import KernelChannel, new_session
from harness import BENCH_DIR, BenchServer, Stack, ours_stack, running
from report import Row, load_average, main, median, ms, percentile, progress, row
from server_plugins import NODELAY_ON_REQUEST

ALIASES = ("kernels",)

STOCK_KERNELS = "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"
QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 10 if QUICK else 20
SPACING_S = 2.5
BURST = 10
ROUNDS = 1 if QUICK else 2  # of bursts on the grown pool
IDLE_S = float(os.environ.get("BENCH_POOL_IDLE_S", 10 if QUICK else 60))
TIMEOUT_S = 180.0
NODELAY = "&nodelay=1"


class Side:
    """One server and its HTTP client, opening numbered notebooks."""

    def __init__(self, server: BenchServer, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http
        self.count = 0

    async def open_notebook(self, query: str = "") -> tuple[float, float, float]:
        """Open a new notebook and run ``1+1`` in it: ms until the session answered, until the
        ``execute_reply`` came, and until the channels websocket was open (its handshake
        answered); then shut its kernel down."""
        self.count += 1
        t0 = time.perf_counter()
        kernel_id = await new_session(self.http, f"notebooks/nb{self.count}.ipynb")
        t_session = time.perf_counter()
        async with KernelChannel.connect(self.server, self.http, kernel_id, query=query) as ch:
            t_open = time.perf_counter()
            msg_id = await ch.send_execute("1+1")
            async for message in ch.replies(msg_id):
                if message["msg_type"] == "execute_reply":
                    break
        t_reply = time.perf_counter()
        content = message["content"]
        assert content["status"] == "ok" and content["execution_count"] == 1, content
        (await self.http.delete(f"/api/kernels/{kernel_id}")).raise_for_status()
        return ms(t_session - t0), ms(t_reply - t0), ms(t_open - t0)

    async def reply_ms(self) -> float:
        """One open (TCP_NODELAY on both sides): ms until its ``execute_reply``."""
        return (await self.open_notebook(NODELAY))[1]

    async def pool_status(self) -> dict[str, Any]:
        response = await self.http.get("/api/cocalc-sync/kernels")
        response.raise_for_status()
        return response.json()["pool"]

    async def pool_full(self) -> int:
        """Wait until the pool holds as many ready kernels for the default kernel as it aims
        for (its ``target``; ``size`` for a pool that does not grow) and none is starting; that
        number."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            status = await self.pool_status()
            key = status["kernels"].get(status["default"] or "", {})
            target = key.get("target", status["size"])
            if key.get("ready", 0) >= target and not key.get("starting", 0):
                return int(target)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the pool did not fill: {status}")
            await asyncio.sleep(0.05)  # the server starts kernels: nothing to await from here


def _server(work: Path, name: str, config: dict[str, dict[str, Any]]) -> BenchServer:
    stack = dataclasses.replace(ours_stack(), name=name)
    return BenchServer(stack, work / name, config=config, pythonpath=[BENCH_DIR])


def _shipped_pool_server(work: Path, name: str) -> BenchServer:
    """Ours with every ``KernelPool`` setting at its shipped default."""
    ours = ours_stack()

    def config(state: Path) -> dict[str, Any]:
        settings = ours.config(state)
        del settings["KernelPool"]
        return settings

    stack: Stack = dataclasses.replace(ours, name=name, config=config)
    return BenchServer(stack, work / name, pythonpath=[BENCH_DIR])


def _stock_kernels_config() -> dict[str, dict[str, Any]]:
    # NODELAY_ON_REQUEST's ServerApp section, plus the stock kernel manager
    server_app = {**NODELAY_ON_REQUEST["ServerApp"], "kernel_manager_class": STOCK_KERNELS}
    return {"ServerApp": server_app}


async def _with_clients(
    servers: list[BenchServer], measure: Callable[..., Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    async with servers[0].http() as a, servers[1].http() as b:
        return await measure(Side(servers[0], a), Side(servers[1], b))


async def _warm(stock: Side, pool: Side, query: str) -> dict[str, list[float]]:
    """Alternating stock and pooled opens, the pool full before each pooled one."""
    times: dict[str, list[float]] = {
        f"{name}{part}": [] for name in ("stock", "ours") for part in ("", "_http", "_ws")
    }
    for _ in range(REPS):
        for name, side in (("stock", stock), ("ours", pool)):
            if side is pool:
                await pool.pool_full()
            session, reply, opened = await side.open_notebook(query)
            times[name].append(reply)
            times[f"{name}_http"].append(session)
            times[f"{name}_ws"].append(opened - session)
    return times


async def _first_opens(stock: Side, pool: Side) -> None:
    """First starts pay for imports and caches, on both sides: not measured."""
    await stock.open_notebook()
    await pool.pool_full()
    await pool.open_notebook()


async def _measure_warm(stock: Side, pool: Side) -> dict[str, Any]:
    await _first_opens(stock, pool)
    return {"plain": await _warm(stock, pool, ""), "nodelay": await _warm(stock, pool, NODELAY)}


async def _spaced(side: Side) -> list[float]:
    """``REPS`` opens, one started every ``SPACING_S`` seconds (on schedule, overlapping when
    an open takes longer)."""

    async def open_at(delay: float) -> float:
        await asyncio.sleep(delay)  # the arrival schedule being measured, not a synchronisation
        return await side.reply_ms()

    return list(await asyncio.gather(*(open_at(i * SPACING_S) for i in range(REPS))))


async def _counters(pool: Side) -> dict[str, int]:
    counters: dict[str, int] = (await pool.pool_status())["counters"]
    return counters


def _handed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in ("claimed", "taken_while_starting", "missed")}


async def _measure_shipped(stock: Side, pool: Side) -> dict[str, Any]:
    """Spaced opens, back-to-back opens, then bursts: the pool as shipped."""
    await _first_opens(stock, pool)
    result: dict[str, Any] = {}
    for scenario in ("spaced", "back"):
        progress(f"pool: {scenario} opens, {REPS} each (load {load_average()})")
        await pool.pool_full()  # a server that has been running: its pool settled
        before = await _counters(pool)
        times = {}
        for name, side in (("stock", stock), ("ours", pool)):
            if scenario == "spaced":
                times[name] = await _spaced(side)
            else:
                times[name] = [await side.reply_ms() for _ in range(REPS)]
        result[scenario] = {**times, "handed": _handed(before, await _counters(pool))}
    result["bursts"] = await _bursts(stock, pool)
    return result


async def _burst(side: Side) -> list[float]:
    return list(await asyncio.gather(*(side.reply_ms() for _ in range(BURST))))


async def _bursts(stock: Side, pool: Side) -> dict[str, Any]:
    """A burst on the pool nobody asked much of, then bursts on the pool demand grew."""
    # Demand so far (the spaced and back-to-back opens) has grown the pool: the first burst
    # measures a pool of the shipped size, as a server that was idle for longer than the
    # pool's demand window has; ours on a fresh server, so nothing grew it.
    times: dict[str, list[float]] = {"stock": [], "cold": [], "grown": []}
    sizes: list[int] = []
    for round_ in range(ROUNDS):
        progress(f"pool: burst {round_ + 1} of {ROUNDS} on the grown pool (load {load_average()})")
        sizes.append(await pool.pool_full())
        await asyncio.sleep(IDLE_S)  # the idle time being measured, not a synchronisation
        times["stock"] += await _burst(stock)
        times["grown"] += await _burst(pool)
    return {**times, "sizes": sizes}


async def _measure_cold_bursts(stock: Side, pool: Side) -> dict[str, Any]:
    await _first_opens(stock, pool)
    await pool.pool_full()
    times = {"stock": await _burst(stock), "cold": await _burst(pool)}
    await pool.pool_full()
    return times


def _executions(times: dict[str, list[float]], name: str) -> list[float]:
    """Per open: ms from the websocket's answered handshake to the execute_reply."""
    parts = zip(times[name], times[f"{name}_ws"], times[f"{name}_http"], strict=True)
    return [reply - ws - session for reply, ws, session in parts]


def _rows(name: str, stock: list[float], ours: list[float], notes: str) -> list[Row]:
    """Median, p90 and max of one measurement."""
    return [
        row(f"{name}, median", median(stock), median(ours), "ms", notes),
        row(f"{name}, p90", percentile(stock, 90), percentile(ours, 90), "ms"),
        row(f"{name}, max", max(stock), max(ours), "ms"),
    ]


def _pooled(handed: dict[str, int]) -> str:
    return (
        f"{handed['claimed']} pooled ({handed['taken_while_starting']} taken over while "
        f"booting), {handed['missed']} normal starts"
    )


def run() -> list[Row]:
    """Stock kernel starts vs pooled ones, side by side (about eight minutes on 2 cores)."""
    work = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    try:
        load = load_average()
        progress(f"pool: warm opens, {REPS} each (load {load})")
        pair = [
            _server(work, "stock-kernels", _stock_kernels_config()),
            _server(work, "pool", {"KernelPool": {"size": 1, "launch_delay_ms": 1000}}),
        ]
        with running(pair):
            warm = asyncio.run(_with_clients(pair, _measure_warm))
        progress(f"pool: a burst of {BURST} on a fresh pool (load {load_average()})")
        pair = [
            _server(work, "stock-kernels-cold", _stock_kernels_config()),
            _shipped_pool_server(work, "pool-cold"),
        ]
        with running(pair):
            cold = asyncio.run(_with_clients(pair, _measure_cold_bursts))
        pair = [
            _server(work, "stock-kernels-shipped", _stock_kernels_config()),
            _shipped_pool_server(work, "pool-shipped"),
        ]
        with running(pair):
            shipped = asyncio.run(_with_clients(pair, _measure_shipped))
    except BaseException:
        progress(f"pool benchmark failed; the servers' logs are in {work}")
        raise
    shutil.rmtree(work, ignore_errors=True)
    plain, nodelay = warm["plain"], warm["nodelay"]
    spaced, back, bursts = shipped["spaced"], shipped["back"], shipped["bursts"]
    return [
        *_rows(
            f"open notebook → first execute_reply, warm pool ({REPS} reps), each side as shipped",
            plain["stock"],
            plain["ours"],
            "stock: jupyter_server's channels websocket as is (Nagle: ~40 ms per execution); "
            "ours: the package's (TCP_NODELAY, the pooled kernel's head start); "
            f"load average {load} before, {load_average()} after",
        ),
        *_rows(
            "same, stock's websocket given TCP_NODELAY",
            nodelay["stock"],
            nodelay["ours"],
            "the pooled start against stock without its websocket's Nagle delay",
        ),
        *_rows(
            "… of which: POST /api/sessions answered (kernel id returned)",
            nodelay["stock_http"],
            nodelay["ours_http"],
            "stock returns before its kernel is up; ours includes the claim and sending the "
            "re-pointing code",
        ),
        *_rows(
            "… of which: the channels websocket opened",
            nodelay["stock_ws"],
            nodelay["ours_ws"],
            "from the session's answer until the websocket's handshake answered: stock asks "
            "for kernel_info; ours waits for the re-pointing code to have run",
        ),
        *_rows(
            "… of which: the first execute_request → execute_reply",
            _executions(nodelay, "stock"),
            _executions(nodelay, "ours"),
            "stock: jupyter_server holds the first message until its kernel_info nudge has "
            "proven the new websocket's iopub subscription; ours: the pool's proven one is used",
        ),
        *_rows(
            f"open notebook → first execute_reply, one open every {SPACING_S:g} s "
            f"({REPS} opens, pool as shipped)",
            spaced["stock"],
            spaced["ours"],
            f"each open on schedule, TCP_NODELAY on both sides; {_pooled(spaced['handed'])}",
        ),
        *_rows(
            f"open notebook → first execute_reply, back-to-back ({REPS} opens, pool as shipped)",
            back["stock"],
            back["ours"],
            f"each open as soon as the previous one ran its cell; {_pooled(back['handed'])}",
        ),
        *_rows(
            f"{BURST} notebooks opened at once, fresh pool as shipped → first execute_reply",
            cold["stock"],
            cold["cold"],
            "a server nobody opened much on: what the shipped size serves",
        ),
        *_rows(
            f"{BURST} notebooks opened at once after {IDLE_S:g} s idle, pool grown by earlier "
            f"demand ({ROUNDS} rounds)",
            bursts["stock"],
            bursts["grown"],
            f"the pool held {', '.join(map(str, bursts['sizes']))} ready kernels before each "
            f"burst; {load_average()} load after",
        ),
    ]


if __name__ == "__main__":
    main(run)
