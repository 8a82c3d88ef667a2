"""Stateless execute: ``POST /api/cocalc-sync/execute`` against starting a kernel yourself.

What a script does without the API: start a kernel with jupyter_client
(``AsyncKernelManager``), wait until it answers, execute the code, read the result, shut the
kernel down — a fresh kernel each time, as the API gives. Measured against that, on a ``jupyter
server`` subprocess of this package (``harness.BenchServer``):

* warm: the stateless pool (size 1) holds a started kernel before each request (``no_cache``,
  so the code really runs; the kernel is discarded afterwards, as every stateless kernel is);
* back-to-back: each request as soon as the previous one answered (no wait for the refill);
* cached: the same request again, answered from the store.

Each row is the time until the result is known (direct: until ``execute_result`` arrived, the
shutdown not counted). Direct and API repetitions alternate, so machine noise hits both alike.
``python bench/bench_stateless.py`` prints the table; ``run()`` returns the rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from harness import BenchServer, ours_stack, running
from jupyter_client.manager import AsyncKernelManager
from report import Row, load_average, main, median, ms, progress, row

ALIASES = ("execute-api",)

REPS = 12
CODE = "2 + 3"
EXECUTE = "/api/cocalc-sync/execute"
TIMEOUT_S = 120.0


async def direct_run(code: str) -> float:
    """Seconds from starting a kernel with jupyter_client to its ``execute_result``."""
    started = time.perf_counter()
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=TIMEOUT_S)
        msg_id = client.execute(code)
        while True:
            msg = await client.get_iopub_msg(timeout=TIMEOUT_S)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                if msg["content"]["data"]["text/plain"] != "5":
                    raise RuntimeError(f"unexpected result {msg['content']}")
                return time.perf_counter() - started
            if msg["msg_type"] == "error":
                raise RuntimeError(f"the code failed: {msg['content']}")
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)


async def api_run(http: httpx.AsyncClient, body: dict) -> tuple[float, bool]:
    started = time.perf_counter()
    response = await http.post(EXECUTE, json=body)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    reply = response.json()
    results = [o for o in reply["outputs"] if o.get("output_type") == "execute_result"]
    if [o["data"]["text/plain"] for o in results] != ["5"]:
        raise RuntimeError(f"unexpected reply {reply}")
    return elapsed, reply["cached"]


async def pool_ready(http: httpx.AsyncClient) -> None:
    """Wait until the stateless pool's python3 kernel answers (polled: it is a server state)."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            status = (await http.get("/api/cocalc-sync/kernels")).json()["stateless_pool"]
            if status.get("python3", {}).get("ready", 0) >= 1:
                return
            await asyncio.sleep(0.05)


async def measure(server: BenchServer) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"direct": [], "warm": [], "back": [], "cached": []}
    async with server.http() as http:
        await api_run(http, {"code": CODE, "no_cache": True})  # fills the pool for python3
        for i in range(REPS):
            times["direct"].append(await direct_run(CODE))
            await pool_ready(http)
            elapsed, cached = await api_run(http, {"code": f"{CODE}  # {i}", "no_cache": True})
            assert not cached
            times["warm"].append(elapsed)
            elapsed, cached = await api_run(http, {"code": f"{CODE}  # {i}"})
            assert cached
            times["cached"].append(elapsed)
        for i in range(REPS):
            body = {"code": f"{CODE}  # back {i}", "no_cache": True}
            times["back"].append((await api_run(http, body))[0])
    return times


def run() -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix="bench-stateless-"))
    stack = dataclasses.replace(ours_stack(), name="stateless")
    server = BenchServer(stack, work / "ours", config={"CocalcSync": {"stateless_pool_size": 1}})
    load = load_average()
    progress(f"stateless: {REPS} direct starts, warm, cached and back-to-back requests ({load})")
    try:
        with running([server]):
            times = asyncio.run(measure(server))
    except BaseException:
        progress(f"stateless benchmark failed; the server's log is in {work}")
        raise
    shutil.rmtree(work, ignore_errors=True)
    direct = ms(median(times["direct"]))
    what = "stock: start a kernel with jupyter_client, run `2 + 3`, read the result"
    return [
        row(
            f"stateless `2 + 3` → result, warm pool, median of {REPS}",
            direct,
            ms(median(times["warm"])),
            "ms",
            f"{what}; ours: POST /api/cocalc-sync/execute with no_cache; load {load} before, "
            f"{load_average()} after",
        ),
        row(
            "… back-to-back (no wait for the pool's refill)",
            direct,
            ms(median(times["back"])),
            "ms",
            "each request as soon as the previous one answered",
        ),
        row(
            "… cached (the same request again)",
            direct,
            ms(median(times["cached"])),
            "ms",
            "answered from the SQLite store, no kernel",
        ),
    ]


if __name__ == "__main__":
    main(run)
