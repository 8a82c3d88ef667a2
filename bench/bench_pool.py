"""Kernel pool benchmark: opening a notebook until its first cell has run, stock vs pooled.

Starts real ``jupyter server`` subprocesses (isolated Jupyter/IPython dirs in a temp folder):
one with jupyter_server's stock ``AsyncMappingKernelManager``, one with ``PoolingKernelManager``
(refill delay 0, so "warm" is reached quickly), then such a pair with TCP_NODELAY, then a pair
with the pool's shipped defaults. What is measured is what a browser does: ``POST
/api/sessions`` for a new notebook, open the kernel's ``/api/kernels/{id}/channels``
websocket, send ``execute_request`` ``1+1``, wait for its ``execute_reply``. Stock and pooled
repetitions alternate, so machine noise hits both alike.

* warm: before each pooled repetition the pool is refilled (that's what the pool is for);
* the same with TCP_NODELAY on both servers' kernel websockets (``NoDelayChannels``): the
  stock websocket's Nagle delay (~40 ms per execution) otherwise dominates a pooled start;
* back-to-back: repetitions without waiting for the refill (the pool hands over kernels still
  booting, else falls back to a normal start);
* burst: 10 notebooks opened at once, pool size 1 and refill delay as shipped.

Run: ``python bench/bench_pool.py`` (prints a markdown table); ``run()`` returns the rows.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from httpx_ws import aconnect_ws
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

STOCK = "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"
OURS = "jupyter_cocalc_sync.kernels.manager.PoolingKernelManager"
REPS = 20
BURST = 10
TIMEOUT_S = 120.0
NODELAY = f"--ServerApp.kernel_websocket_connection_class={Path(__file__).stem}.NoDelayChannels"


class NoDelayChannels(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket with TCP_NODELAY, for the "no Nagle" rows.

    The stock websocket leaves Nagle's algorithm on: a reply written right after another
    small frame waits for the client's delayed ACK (~40 ms), in every execution, stock or
    pooled. These rows show what remains once websockets set TCP_NODELAY (SPEC section 7).
    """

    def connect(self) -> asyncio.Future[None] | None:
        self.websocket_handler.set_nodelay(True)
        return super().connect()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A ``jupyter server`` subprocess with its own Jupyter dirs, driven over HTTP."""

    def __init__(self, base: Path, name: str, kernel_manager_class: str, *args: str) -> None:
        self.name = name
        self.dir = base / name
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.args = [f"--ServerApp.kernel_manager_class={kernel_manager_class}", *args]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.client = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"token {self.token}"},
            timeout=TIMEOUT_S,
        )
        self.count = 0

    async def __aenter__(self) -> JupyterServer:
        env = dict(os.environ)
        for var, sub in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("IPYTHONDIR", "ipython"),
        ):
            (self.dir / sub).mkdir(parents=True)
            env[var] = str(self.dir / sub)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        here = str(Path(__file__).resolve().parent)  # for NoDelayChannels
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        (self.dir / "root").mkdir()
        extensions = {"jupyter_cocalc_sync": True, "jupyter_server_ydoc": False}
        (self.dir / "config" / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": extensions}})
        )
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115 (closed in __aexit__)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.allow_root=True",
            "--ServerApp.open_browser=False",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={self.dir / 'root'}",
            *self.args,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        await self._until(self._answers, "the server to answer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()  # the server shuts its kernels down
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.log.close()

    async def _until(self, condition: Any, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not await condition():
            if self.process is not None and self.process.returncode is not None:
                tail = (self.dir / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name}: the server exited:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def _answers(self) -> bool:
        try:
            return (await self.client.get("/api/status")).status_code == 200
        except httpx.TransportError:
            return False

    async def pool_status(self) -> dict[str, Any]:
        r = await self.client.get("/api/cocalc-sync/kernels")
        r.raise_for_status()
        return r.json()["pool"]

    async def pool_full(self) -> None:
        """Wait until the pool holds ``size`` ready kernels for the default kernel."""

        async def full() -> bool:
            status = await self.pool_status()
            counts = status["kernels"].get(status["default"] or "", {})
            return counts.get("ready", 0) >= status["size"]

        await self._until(full, "the pool to fill")

    async def open_notebook(self) -> dict[str, float]:
        """Open a new notebook as JupyterLab does and run ``1+1``: milliseconds it took."""
        self.count += 1
        path = f"notebooks/nb{self.count}.ipynb"
        body = {"path": path, "name": Path(path).name, "type": "notebook"}
        t0 = time.perf_counter()
        r = await self.client.post("/api/sessions", json={**body, "kernel": {"name": "python3"}})
        r.raise_for_status()
        t_session = time.perf_counter()
        session = r.json()
        reply = await self._execute(session["kernel"]["id"], "1+1")
        t_reply = time.perf_counter()
        assert reply["content"]["status"] == "ok", reply["content"]
        assert reply["content"]["execution_count"] == 1, reply["content"]
        await self.client.delete(f"/api/sessions/{session['id']}")
        return {"session": (t_session - t0) * 1000, "reply": (t_reply - t0) * 1000}

    async def _execute(self, kernel_id: str, code: str) -> dict[str, Any]:
        msg_id = uuid.uuid4().hex
        client_session = uuid.uuid4().hex
        request = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "session": client_session,
                "username": "bench",
                "version": "5.3",
                "date": "",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
        url = f"{self.url}/api/kernels/{kernel_id}/channels?session_id={client_session}"
        async with aconnect_ws(url, self.client) as ws:
            await ws.send_text(json.dumps(request))
            while True:
                message = json.loads(await ws.receive_text())
                if (
                    message.get("msg_type") == "execute_reply"
                    and message["parent_header"].get("msg_id") == msg_id
                ):
                    return message


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def _rows(name: str, stock: list[float], ours: list[float], notes: str) -> list[dict[str, Any]]:
    rows = []
    for stat, fn in (("median", statistics.median), ("p90", _p90), ("max", max)):
        s, o = fn(stock), fn(ours)
        rows.append(
            {
                "benchmark": f"{name}, {stat}",
                "stock": round(s, 1),
                "ours": round(o, 1),
                "unit": "ms",
                "ratio": round(s / o, 1) if o else math.inf,
                "notes": notes if stat == "median" else "",
            }
        )
    return rows


async def _warm(stock: JupyterServer, pool: JupyterServer) -> dict[str, list[float]]:
    """Alternating stock and pooled opens, the pool refilled before each pooled one."""
    times: dict[str, list[float]] = {
        "stock": [],
        "stock_session": [],
        "ours": [],
        "ours_session": [],
    }
    for _ in range(REPS):
        s = await stock.open_notebook()
        await pool.pool_full()
        o = await pool.open_notebook()
        for side, result in (("stock", s), ("ours", o)):
            times[side].append(result["reply"])
            times[f"{side}_session"].append(result["session"])
    return times


async def _back_to_back(server: JupyterServer) -> list[float]:
    """Opens one after the other, each as soon as the previous one has run its cell."""
    return [(await server.open_notebook())["reply"] for _ in range(REPS)]


async def _bursts(stock: JupyterServer, pool: JupyterServer) -> dict[str, list[float]]:
    """``BURST`` notebooks opened at once, 3 rounds per server, the pool full before each."""
    times: dict[str, list[float]] = {"stock": [], "ours": []}
    for _ in range(3):
        for side, server in (("stock", stock), ("ours", pool)):
            if server is pool:
                await pool.pool_full()
            results = await asyncio.gather(*(server.open_notebook() for _ in range(BURST)))
            times[side] += [r["reply"] for r in results]
    return times


async def _run() -> list[dict[str, Any]]:
    base = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    try:
        async with (
            JupyterServer(base, "stock", STOCK) as stock,
            JupyterServer(base, "pool", OURS, "--KernelPool.launch_delay_ms=0") as pool,
        ):
            # whether or not the extension starts the pool, a first start does
            await pool.open_notebook()
            await stock.open_notebook()
            warm = await _warm(stock, pool)
            status = await pool.pool_status()
            await pool.pool_full()
            cold = {"stock": await _back_to_back(stock), "ours": await _back_to_back(pool)}
            after = (await pool.pool_status())["counters"]
        async with (
            JupyterServer(base, "stock-nodelay", STOCK, NODELAY) as stock,
            JupyterServer(
                base, "pool-nodelay", OURS, "--KernelPool.launch_delay_ms=0", NODELAY
            ) as pool,
        ):
            await pool.open_notebook()
            await stock.open_notebook()
            nodelay = await _warm(stock, pool)
        async with (
            JupyterServer(base, "stock-burst", STOCK) as stock,
            JupyterServer(base, "pool-defaults", OURS) as pool,
        ):
            await pool.open_notebook()
            burst = await _bursts(stock, pool)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    counters = status["counters"]
    handed = {k: after[k] - counters[k] for k in ("claimed", "taken_while_starting", "missed")}
    return [
        *_rows(
            f"open notebook → first execute_reply, warm pool ({REPS} reps)",
            warm["stock"],
            warm["ours"],
            f"pool size 1, refilled before each rep; {counters['claimed']} claims so far",
        ),
        *_rows(
            "POST /api/sessions answered (kernel id), warm pool",
            warm["stock_session"],
            warm["ours_session"],
            "the rest of the first-reply time is the websocket and the execution",
        ),
        *_rows(
            f"same, channels websocket with TCP_NODELAY ({REPS} reps)",
            nodelay["stock"],
            nodelay["ours"],
            "both servers' kernel websockets without Nagle's ~40 ms (see NoDelayChannels)",
        ),
        *_rows(
            f"open notebook → first execute_reply, back-to-back ({REPS} reps)",
            cold["stock"],
            cold["ours"],
            f"no wait for the refill (delay 0): {handed['claimed']} pooled "
            f"({handed['taken_while_starting']} taken over while booting), "
            f"{handed['missed']} normal starts",
        ),
        *_rows(
            f"{BURST} notebooks opened at once → first execute_reply (3 rounds)",
            burst["stock"],
            burst["ours"],
            "pool defaults: size 1, refill delay 7500 ms; one notebook gets the pooled kernel",
        ),
    ]


def run() -> list[dict[str, Any]]:
    """Run the benchmark (about a minute); rows for ``bench/run.py``."""
    return asyncio.run(_run())


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| benchmark | stock | ours | unit | stock/ours | notes |",
        "|---|---:|---:|---|---:|---|",
    ]
    lines += [
        f"| {r['benchmark']} | {r['stock']} | {r['ours']} | {r['unit']} | {r['ratio']} "
        f"| {r['notes']} |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(run()))
