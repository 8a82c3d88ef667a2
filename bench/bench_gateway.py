"""Remote kernels: opening a notebook until its first cell has run, on a kernel gateway.

A real ``jupyter kernelgateway`` on loopback, and three servers: stock jupyter_server pointed at
the gateway (``GatewayClient.url``), ours pointed at the same gateway, and ours with local kernels
and its warm pool (for reference). Measured as in ``bench_pool.py``: ``POST /api/sessions`` for
a new notebook, the kernel's channels websocket, ``1+1``, its ``execute_reply``; repetitions
alternate between the servers.

With a gateway the pool is off (a gateway starts its kernels itself, where it is told at start),
so the gateway rows show what the extension costs on that path (nothing, ideally: ratio ~1),
and the local row what the pool saves where it can run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_pool import NODELAY, REPS, Side
from harness import REPO_DIR, BenchServer, ours_stack, running, stock_stack
from report import Row, load_average, main, median, percentile, progress, row

# the kernel gateway process the tests start (tests/servers.py)
sys.path.insert(0, str(REPO_DIR / "tests"))
from servers import GatewayProcess

GATEWAY_KERNELS = "jupyter_server.gateway.managers.GatewayMappingKernelManager"


def _gateway_config(url: str) -> dict[str, dict[str, Any]]:
    # the stacks' own kernel manager setting makes way for jupyter_server's gateway classes
    return {"ServerApp": {"kernel_manager_class": GATEWAY_KERNELS}, "GatewayClient": {"url": url}}


#: an open that has no execute_reply by then is counted as failed (jupyter_server's gateway
#: websocket drops what a client sends before its own connection to the gateway is up)
OPEN_TIMEOUT = 30.0


async def _open(side: Side) -> float | None:
    try:
        return (await asyncio.wait_for(side.open_notebook(NODELAY), OPEN_TIMEOUT))[1]
    except TimeoutError:
        return None


async def _measure(stock: Side, ours: Side, local: Side) -> dict[str, list[float | None]]:
    for side in (stock, ours, local):
        await _open(side)  # first starts pay for imports, on every side
    times: dict[str, list[float | None]] = {"stock": [], "ours": [], "local": []}
    for _ in range(REPS):
        for name, side in (("stock", stock), ("ours", ours), ("local", local)):
            if side is local:
                await local.pool_full()
            times[name].append(await _open(side))
    return times


async def _with_clients(servers: list[BenchServer]) -> dict[str, list[float | None]]:
    async with servers[0].http() as a, servers[1].http() as b, servers[2].http() as c:
        return await _measure(Side(servers[0], a), Side(servers[1], b), Side(servers[2], c))


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        gateway = GatewayProcess(work / "gateway").start()
        try:
            gateway_config = _gateway_config(gateway.url)
            local = dataclasses.replace(ours_stack(), name="ours-local")
            servers = [
                BenchServer(stock_stack(), work / "stock", config=gateway_config),
                BenchServer(ours_stack(), work / "ours", config=gateway_config),
                # as shipped, but its refill 1 s after a claim (shipped: 7.5 s): see bench_pool
                BenchServer(
                    local,
                    work / "local",
                    config={"KernelPool": {"size": 1, "launch_delay_ms": 1000}},
                ),
            ]
            progress(f"gateway: {REPS} opens per server (load {load_average()})")
            with running(servers):
                times = asyncio.run(_with_clients(servers))
        finally:
            gateway.stop()
    failed = {name: sum(t is None for t in ts) for name, ts in times.items()}
    stock, ours, local_times = ([t for t in times[n] if t is not None] for n in times)
    what = "new notebook → execute_reply of 1+1"
    unanswered = f"opens without a reply in {OPEN_TIMEOUT:.0f} s: " + ", ".join(
        f"{name} {count}" for name, count in failed.items()
    )
    return [
        row(
            f"{what} on a kernel gateway, median",
            median(stock),
            median(ours),
            "ms",
            f"stock jupyter_server and ours, both with --gateway-url (the pool is off there); "
            f"{unanswered}",
        ),
        row("… on a kernel gateway, p90", percentile(stock, 90), percentile(ours, 90), "ms"),
        row(
            f"{what}, local kernels and ours's warm pool (reference), median",
            median(stock),
            median(local_times),
            "ms",
            "stock column: the gateway start above",
        ),
    ]


if __name__ == "__main__":
    main(run)
