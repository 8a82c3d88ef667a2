"""Kernel pool: opening a notebook until its first cell has run, stock kernel starts vs pooled.

Real ``jupyter server`` subprocesses of this package's stack (``harness.BenchServer``), alike
but for the kernel manager: jupyter_server's stock ``AsyncMappingKernelManager`` against our
``PoolingKernelManager``. Measured is what a browser does: ``POST /api/sessions`` for a new
notebook, open the kernel's ``/api/kernels/{id}/channels`` websocket, send ``execute_request``
``1+1``, wait for its ``execute_reply``. Stock and pooled repetitions alternate, so machine
noise hits both alike.

* warm: the pool (size 1) is full before each pooled repetition — what it is for. Its refill
  waits 1 s after a claim (shipped: 7.5 s), so, as shipped, no kernel boots next to the
  measured open. Ours's kernel websocket is the package's (TCP_NODELAY, and a pooled kernel's
  first websocket skips jupyter_server's kernel_info round trips: ``pool/head_start.py``);
  stock's is jupyter_server's as is, and again with TCP_NODELAY on its server end
  (``server_plugins.NoDelayOnRequest``): with Nagle's algorithm every execution over that
  websocket waits ~40 ms for a delayed ACK;
* back-to-back: each open as soon as the previous one has run its cell, no wait for the refill
  (a start then takes over the pooled kernel still booting, or falls back to a normal start);
* burst: ``BURST`` notebooks opened at once, the pool as shipped (size 1, refill delay 7.5 s).

``python bench/bench_pool.py`` prints the table; ``run()`` returns the rows (``bench/run.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from clients import KernelChannel, new_session
from harness import BENCH_DIR, BenchServer, ours_stack, running
from report import Row, load_average, main, median, ms, percentile, progress, row
from server_plugins import NODELAY_ON_REQUEST

ALIASES = ("kernels",)

STOCK_KERNELS = "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"
REPS = 20
BURST = 10
ROUNDS = 3  # of bursts
TIMEOUT_S = 120.0
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

    async def pool_status(self) -> dict[str, Any]:
        response = await self.http.get("/api/cocalc-sync/kernels")
        response.raise_for_status()
        return response.json()["pool"]

    async def pool_full(self) -> None:
        """Wait until the pool holds its ``size`` ready kernels for the default kernel."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            status = await self.pool_status()
            if status["kernels"].get(status["default"] or "", {}).get("ready", 0) >= status["size"]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the pool did not fill: {status}")
            await asyncio.sleep(0.05)  # the server starts kernels: nothing to await from here


def _server(work: Path, name: str, config: dict[str, dict[str, Any]]) -> BenchServer:
    stack = dataclasses.replace(ours_stack(), name=name)
    return BenchServer(stack, work / name, config=config, pythonpath=[BENCH_DIR])


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


async def _measure_back_to_back(stock: Side, pool: Side) -> dict[str, Any]:
    await _first_opens(stock, pool)
    await pool.pool_full()
    before = (await pool.pool_status())["counters"]
    back_to_back = {
        name: [(await side.open_notebook(NODELAY))[1] for _ in range(REPS)]
        for name, side in (("stock", stock), ("ours", pool))
    }
    after = (await pool.pool_status())["counters"]
    handed = {k: after[k] - before[k] for k in ("claimed", "taken_while_starting", "missed")}
    return {"back": back_to_back, "handed": handed}


async def _measure_bursts(stock: Side, pool: Side) -> dict[str, Any]:
    times: dict[str, list[float]] = {"stock": [], "ours": []}
    for _ in range(ROUNDS):
        for name, side in (("stock", stock), ("ours", pool)):
            if side is pool:
                await pool.pool_full()
            results = await asyncio.gather(*(side.open_notebook(NODELAY) for _ in range(BURST)))
            times[name] += [reply for _, reply, _ in results]
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


def run() -> list[Row]:
    """Stock kernel starts vs pooled ones, side by side (about three minutes on 2 cores)."""
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
        progress(f"pool: back-to-back opens, {REPS} each (load {load_average()})")
        pair = [
            _server(work, "stock-kernels-again", _stock_kernels_config()),
            _server(work, "pool-no-delay", {"KernelPool": {"size": 1, "launch_delay_ms": 0}}),
        ]
        with running(pair):
            back = asyncio.run(_with_clients(pair, _measure_back_to_back))
        defaults = [
            _server(work, "stock-kernels-burst", _stock_kernels_config()),
            _server(work, "pool-defaults", {"KernelPool": {"size": 1, "launch_delay_ms": 7500}}),
        ]
        progress(f"pool: {ROUNDS} bursts of {BURST} opens (load {load_average()})")
        with running(defaults):
            burst = asyncio.run(_with_clients(defaults, _measure_bursts))
    except BaseException:
        progress(f"pool benchmark failed; the servers' logs are in {work}")
        raise
    shutil.rmtree(work, ignore_errors=True)
    plain, nodelay, handed = warm["plain"], warm["nodelay"], back["handed"]
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
            f"open notebook → first execute_reply, back-to-back ({REPS} reps, TCP_NODELAY)",
            back["back"]["stock"],
            back["back"]["ours"],
            f"no wait for the refill (delay 0): {handed['claimed']} pooled "
            f"({handed['taken_while_starting']} taken over while booting), "
            f"{handed['missed']} normal starts",
        ),
        *_rows(
            f"{BURST} notebooks opened at once → first execute_reply ({ROUNDS} rounds)",
            burst["stock"],
            burst["ours"],
            "pool as shipped: size 1, refill delay 7500 ms; one notebook per burst is pooled",
        ),
    ]


if __name__ == "__main__":
    main(run)
