"""Widget updates: a slider moved by one client, seen by another through the kernel.

The kernel links two widgets: ``s.observe(…)`` copies the slider ``s``'s value into an
``IntText`` ``t``. Client A sets ``s`` to ``i``; the time until client B sees ``t == i`` is a
full client → kernel → other client trip (the kernel's own reaction included). ``N`` updates,
one after the other; p50/p99 latency and the bytes B receives per update (all of it, over the
whole run, divided by ``N``).

* **stock**: JupyterLab's own comm path, on a plain jupyter_server (no collaboration
  extension): A and B are two kernel websockets (``/api/kernels/<id>/channels``, JSON
  protocol) of the notebook's session kernel; A sends ``comm_msg {"method": "update"}``, B sees
  the kernel's ``update`` of ``t`` (and everything else the kernel broadcasts: status, echoes).
* **ours**: A and B are ``LiveNotebook`` clients; A writes ``{"value": i}`` into the slider's
  ``value`` record of the widget table, the server sends it to the kernel, and the kernel's
  update of ``t`` reaches B through the widget table's room.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clients import ByteCount, KernelChannel, new_session
from harness import BenchServer, Stack, ours_stack, running
from notebooks import code_notebook
from report import Row, load_average, main, ms, percentile, progress, row

from jupyter_cocalc_sync.client import CocalcSyncClient

N = 1000
WARMUP = 20
TIMEOUT = 60.0
SETUP = (
    "from ipywidgets import IntSlider, IntText\n"
    "s = IntSlider(max=10**6)\n"
    "t = IntText()\n"
    "s.observe(lambda change: setattr(t, 'value', change['new']), 'value')\n"
    "s"
)


def plain_server_stack() -> Stack:
    """jupyter_server as shipped, in this environment (its kernels have ipywidgets)."""

    def config(state: Path) -> dict[str, Any]:
        return {"BaseFileIdManager": {"db_path": str(state / "file_id.db")}}

    return Stack("stock", Path(sys.executable), ("jupyter_server_fileid",), config)


async def measure_stock(server: BenchServer) -> tuple[list[float], float]:
    http = server.http()
    kernel_id = await new_session(http, "widgets.ipynb")
    async with (
        KernelChannel.connect(server, http, kernel_id) as a,
        KernelChannel.connect(server, http, kernel_id) as b,
    ):
        models: dict[str, str] = {}
        msg_id = await a.send_execute(SETUP)
        async for message in a.replies(msg_id):
            if message["msg_type"] == "comm_open":
                state = message["content"]["data"]["state"]
                models[state["_model_name"]] = message["content"]["comm_id"]
        slider, text = models["IntSliderModel"], models["IntTextModel"]
        count = ByteCount()

        async def update(value: int) -> float:
            start = time.perf_counter()
            await a.ws.send_text(json.dumps(_comm_update(a.session, slider, value)))
            async with asyncio.timeout(TIMEOUT):
                while True:
                    frame = await b.ws.receive_text()
                    count.add(len(frame.encode()))
                    message = json.loads(frame)
                    content = message.get("content", {})
                    data = content.get("data", {})
                    if (
                        message.get("msg_type") == "comm_msg"
                        and content.get("comm_id") == text
                        and data.get("method") == "update"
                        and data.get("state", {}).get("value") == value
                    ):
                        return time.perf_counter() - start

        for i in range(1, WARMUP + 1):
            await update(i)
        count.reset()
        times = [await update(WARMUP + i) for i in range(1, N + 1)]
        await http.aclose()
        return times, count.bytes / N


def _comm_update(session: str, comm_id: str, value: int) -> dict[str, Any]:
    from datetime import UTC, datetime
    from uuid import uuid4

    header = {
        "msg_id": uuid4().hex,
        "msg_type": "comm_msg",
        "session": session,
        "username": "bench",
        "version": "5.3",
        "date": datetime.now(UTC).isoformat(),
    }
    data = {"method": "update", "state": {"value": value}, "buffer_paths": []}
    return {
        "header": header,
        "parent_header": {},
        "metadata": {},
        "content": {"comm_id": comm_id, "data": data},
        "channel": "shell",
        "buffers": [],
    }


async def measure_ours(server: BenchServer) -> tuple[list[float], float, int]:
    path = server.write_file("widgets.ipynb", code_notebook([("setup", SETUP)]))
    async with CocalcSyncClient(server.url, server.token) as client:
        a = await client.open(path)
        b = await client.open(path)
        await a.run(["setup"])
        await a.wait_idle(["setup"], timeout=TIMEOUT)
        await b.widgets.wait_for(lambda w: w.find(model_name="IntTextModel"), timeout=TIMEOUT)
        slider = a.widgets.find(model_name="IntSliderModel")[0]
        text = b.widgets.find(model_name="IntTextModel")[0]
        count = ByteCount()
        receive = b.widgets._receive

        def counting(frame: bytes, ws: Any) -> None:
            count.add(len(frame))
            receive(frame, ws)

        b.widgets._receive = counting  # type: ignore[method-assign]

        async def update(value: int) -> float:
            start = time.perf_counter()
            a.widgets.set_value(slider, {"value": value})
            await b.widgets.wait_for(lambda w: w.state(text).get("value") == value, TIMEOUT)
            return time.perf_counter() - start

        for i in range(1, WARMUP + 1):
            await update(i)
        count.reset()
        times = [await update(WARMUP + i) for i in range(1, N + 1)]
        # the kernel has the last value (not only the table)
        check = "assert s.value == t.value"
        a.set({"type": "cell", "id": "setup", "input": check})
        a.commit()
        await a.run(["setup"])
        await a.wait_idle(["setup"], timeout=TIMEOUT)
        errors = [
            o
            for o in (a.get_one({"type": "cell", "id": "setup"}).get("output") or {}).values()
            if o.get("output_type") == "error"
        ]
        return times, count.bytes / N, len(errors)


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-widgets-") as tmp:
        servers = [
            BenchServer(plain_server_stack(), Path(tmp) / "stock"),
            BenchServer(ours_stack(), Path(tmp) / "ours"),
        ]
        with running(servers):
            progress(f"widgets: {N} slider updates, stock comm path")
            stock_times, stock_bytes = asyncio.run(measure_stock(servers[0]))
            progress(f"widgets: {N} slider updates, ours (widget table)")
            ours_times, ours_bytes, errors = asyncio.run(measure_ours(servers[1]))
    note = f"{N} updates, A → kernel (s observes, sets t) → B; load {load_average()}"
    if errors:
        note += "; THE KERNEL DID NOT GET THE LAST VALUE"
    return [
        row(
            "widget update p50",
            ms(percentile(stock_times, 50)),
            ms(percentile(ours_times, 50)),
            "ms",
            note,
        ),
        row(
            "widget update p99",
            ms(percentile(stock_times, 99)),
            ms(percentile(ours_times, 99)),
            "ms",
            note,
        ),
        row("widget update bytes to B", stock_bytes, ours_bytes, "B/update", note),
    ]


if __name__ == "__main__":
    main(run)
