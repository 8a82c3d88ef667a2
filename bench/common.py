"""Shared pieces of the benchmarks: result rows, statistics, notebooks, servers, clients.

Two server stacks run side by side:

* **stock**: jupyter-collaboration's server (``jupyter_server_ydoc`` + ``jupyter_server_fileid``)
  from the virtualenv ``bench/.venv-stock`` (created from ``requirements-stock.txt`` on first
  use), because installing it next to this extension would take over the same routes;
* **ours**: ``jupyter_cocalc_sync`` + ``jupyter_server_fileid`` from the running interpreter.

Each server gets its own root, isolated Jupyter/IPython dirs, binds 127.0.0.1 only, and has
every other server extension switched off (checked against its log after start).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypedDict

import httpx
import nbformat
from httpx_ws import AsyncWebSocketSession, aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Provider, Text
from pycrdt.websocket.websocket import HttpxWebsocket

from jupyter_cocalc_sync.client import CocalcSyncClient, LiveNotebook

# the test suite's helpers for real servers and clients, shared rather than copied
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import eventually
from servers import free_port, isolated_env, server_command

BENCH_DIR = Path(__file__).resolve().parent
STOCK_VENV = BENCH_DIR / ".venv-stock"
STOCK_REQUIREMENTS = BENCH_DIR / "requirements-stock.txt"
RESULTS_DIR = BENCH_DIR / "results"

#: packages whose versions the report lists, per stack
STOCK_PACKAGES = (
    "jupyter_server",
    "jupyter-server-ydoc",
    "jupyter-ydoc",
    "pycrdt",
    "pycrdt-websocket",
    "pycrdt-store",
    "jupyter-server-fileid",
    "nbformat",
    "tornado",
    "ipykernel",
)
OURS_PACKAGES = (
    "jupyter-cocalc-sync",
    "jupyter_server",
    "jupyter-ydoc",
    "pycrdt",
    "pycrdt-websocket",
    "pycrdt-store",
    "jupyter-server-fileid",
    "nbformat",
    "tornado",
    "ipykernel",
    "httpx-ws",
)


# -- result rows ------------------------------------------------------------------------------


class Row(TypedDict):
    benchmark: str
    stock: float | None
    ours: float
    unit: str
    ratio: float | None
    notes: str


def row(
    benchmark: str,
    stock: float | None,
    ours: float,
    unit: str,
    notes: str = "",
    *,
    lower_is_better: bool = True,
) -> Row:
    """A result row; ``ratio`` > 1 always means ours is better (stock/ours when lower wins)."""
    ratio: float | None = None
    if stock is not None and ours > 0 and stock > 0:
        ratio = stock / ours if lower_is_better else ours / stock
    direction = "lower is better" if lower_is_better else "higher is better"
    return {
        "benchmark": benchmark,
        "stock": stock,
        "ours": ours,
        "unit": unit,
        "ratio": ratio,
        "notes": f"{direction}; {notes}" if notes else direction,
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def markdown_table(rows: Iterable[Row]) -> str:
    lines = [
        "| benchmark | stock | ours | unit | ratio (stock/ours) | notes |",
        "|---|---:|---:|---|---:|---|",
    ]
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        notes = r["notes"].replace("|", "\\|")
        lines.append(
            f"| {r['benchmark']} | {fmt(r['stock'])} | {fmt(r['ours'])} | {r['unit']} "
            f"| {ratio} | {notes} |"
        )
    return "\n".join(lines)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(run: Callable[[], list[Row]]) -> None:
    """What a benchmark module does when run as a script: run it, print its table."""
    print(markdown_table(run()))


# -- statistics -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: int) -> float:
    """The ``p``-th percentile (inclusive linear interpolation)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def ms(seconds: float) -> float:
    return seconds * 1000


# -- generated notebooks ----------------------------------------------------------------------


class TextSource:
    """Deterministic, varied text of a given size (lines of ~80 characters)."""

    def __init__(self, seed: int = 0, pool_size: int = 2000) -> None:
        self.rng = random.Random(seed)
        letters = string.ascii_lowercase
        words = ["".join(self.rng.choices(letters, k=self.rng.randint(2, 9))) for _ in range(500)]
        self.lines = [" ".join(self.rng.choices(words, k=12)) + f" {i}\n" for i in range(pool_size)]

    def text(self, size: int) -> str:
        average = sum(len(line) for line in self.lines[:100]) / 100
        chunk = "".join(self.rng.choices(self.lines, k=int(size * 1.2 / average) + 1))
        return chunk[:size]

    def base64_png(self, encoded_size: int) -> str:
        """A base64 string of ~``encoded_size`` characters that starts like a PNG."""
        raw = b"\x89PNG\r\n\x1a\n" + self.rng.randbytes(encoded_size * 3 // 4 - 8)
        return base64.b64encode(raw).decode("ascii")


def notebook_with_outputs(
    n_cells: int, outputs: Callable[[int], list[dict[str, Any]]]
) -> nbformat.NotebookNode:
    """An nbformat 4.5 notebook of ``n_cells`` code cells, cell ``i`` having ``outputs(i)``."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    for i in range(n_cells):
        cell = nbformat.v4.new_code_cell(
            f"# cell {i}\nresult_{i} = compute({i})\nprint(result_{i})",
            id=f"cell-{i}",
            execution_count=i + 1,
        )
        cell.outputs = [nbformat.from_dict(o) for o in outputs(i)]
        nb.cells.append(cell)
    return nb


def stream_output(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


def display_output(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def text_notebook(n_cells: int, total_output_bytes: int, seed: int = 1) -> str:
    """ipynb text: ``n_cells`` cells with ``total_output_bytes`` of stream output in all."""
    source = TextSource(seed)
    per_cell = total_output_bytes // n_cells
    nb = notebook_with_outputs(n_cells, lambda i: [stream_output(source.text(per_cell))])
    return nbformat.writes(nb)


def small_notebook(n_cells: int = 5) -> str:
    nb = notebook_with_outputs(n_cells, lambda i: [stream_output(f"{i}\n")])
    return nbformat.writes(nb)


# -- the two stacks ---------------------------------------------------------------------------


def ensure_stock_venv() -> Path:
    """The python of ``bench/.venv-stock``, created or updated from the pinned requirements."""
    python = STOCK_VENV / "bin" / "python"
    stamp = STOCK_VENV / ".installed-requirements"
    wanted = STOCK_REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        progress(f"creating {STOCK_VENV} (once) …")
        subprocess.run([sys.executable, "-m", "venv", str(STOCK_VENV)], check=True, timeout=300)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(STOCK_REQUIREMENTS)],
        check=True,
        timeout=1200,
    )
    stamp.write_text(wanted)
    return python


def package_versions(python: Path | str, names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` in the environment of ``python``."""
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "out = {'python': sys.version.split()[0]}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = version(n)\n"
        "    except PackageNotFoundError: out[n] = 'absent'\n"
        "print(json.dumps(out))"
    )
    result = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


@dataclass(frozen=True)
class Stack:
    """One server stack: its interpreter, the extensions to run, and its configuration."""

    name: str
    python: Path
    extensions: tuple[str, ...]
    config: Callable[[Path], dict[str, Any]] = field(repr=False)
    packages: tuple[str, ...] = ()

    def versions(self) -> dict[str, str]:
        return package_versions(self.python, self.packages)


def stock_stack() -> Stack:
    def config(state: Path) -> dict[str, Any]:
        return {
            "SQLiteYStore": {"db_path": str(state / "ystore.db")},
            "YDocExtension": {"session_store_path": str(state / "sessions.json")},
            "BaseFileIdManager": {"db_path": str(state / "file_id.db")},
        }

    return Stack(
        "stock",
        ensure_stock_venv(),
        ("jupyter_server_ydoc", "jupyter_server_fileid"),
        config,
        STOCK_PACKAGES,
    )


def ours_stack() -> Stack:
    def config(state: Path) -> dict[str, Any]:
        return {
            "ServerApp": {
                "kernel_manager_class": "jupyter_cocalc_sync.kernels.manager.PoolingKernelManager"
            },
            # no benchmark runs code: a pooled kernel booting would only add noise
            "KernelPool": {"size": 0},
            "CocalcSync": {"store_path": str(state / "cocalc.db")},
            "BaseFileIdManager": {"db_path": str(state / "file_id.db")},
        }

    return Stack(
        "ours",
        Path(sys.executable),
        ("jupyter_cocalc_sync", "jupyter_server_fileid"),
        config,
        OURS_PACKAGES,
    )


_CONFIGURED_EXTENSIONS = """
import json, pathlib
from jupyter_core.paths import jupyter_config_path
names = set()
for folder in jupyter_config_path():
    for f in pathlib.Path(folder, "jupyter_server_config.d").glob("*.json"):
        names.update(json.loads(f.read_text()).get("ServerApp", {}).get("jpserver_extensions", {}))
print(json.dumps(sorted(names)))
"""


class BenchServer:
    """A ``jupyter server`` subprocess of one stack, on its own root and Jupyter dirs."""

    def __init__(
        self,
        stack: Stack,
        workdir: Path,
        token: str = "bench-token",
        *,
        config: dict[str, dict[str, Any]] | None = None,
        pythonpath: Sequence[Path] = (),
    ) -> None:
        self.stack = stack
        #: configuration on top of the stack's (per section, e.g. ``{"ServerApp": {…}}``)
        self.extra_config = config or {}
        #: folders the server process imports from first (for classes named in ``config``)
        self.pythonpath = tuple(pythonpath)
        self.root = workdir / "root"
        self.state = workdir / "state"
        self.token = token
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.state / "server.log"

    @property
    def name(self) -> str:
        return self.stack.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = isolated_env(self.state)
        env.pop("VIRTUAL_ENV", None)
        if self.pythonpath:
            paths = [*map(str, self.pythonpath), env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        return env

    def _write_config(self) -> None:
        installed = json.loads(
            subprocess.run(
                [str(self.stack.python), "-c", _CONFIGURED_EXTENSIONS],
                env=self.env(),
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout
        )
        extensions = {name: False for name in installed}
        extensions.update(dict.fromkeys(self.stack.extensions, True))
        config = self.stack.config(self.state)
        for section, values in self.extra_config.items():
            config.setdefault(section, {}).update(values)
        config.setdefault("ServerApp", {})["jpserver_extensions"] = extensions
        path = self.state / "config" / "jupyter_server_config.json"
        path.write_text(json.dumps(config, indent=1))

    def launch(self) -> None:
        """Start the process (``wait_ready`` waits until it answers)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self._write_config()
        args = server_command(
            str(self.stack.python), "jupyter_server", self.port, self.token, self.root
        )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args,
                env=self.env(),
                cwd=self.state,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited:\n{self.log()[-3000:]}")
            try:
                response = httpx.get(f"{self.url}/api/status", params={"token": self.token})
                if response.status_code == 200:
                    self._check_extensions()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # another process starting to listen: nothing to await
        raise TimeoutError(f"{self.name} server did not start:\n{self.log()[-3000:]}")

    def loaded_extensions(self) -> list[str]:
        marker = " | extension was successfully loaded."
        return sorted(
            line.split(marker)[0].rsplit("] ", 1)[-1].strip()
            for line in self.log().splitlines()
            if marker in line
        )

    def _check_extensions(self) -> None:
        loaded = self.loaded_extensions()
        if sorted(self.stack.extensions) != loaded:
            raise RuntimeError(
                f"{self.name} server loaded {loaded}, expected {sorted(self.stack.extensions)}"
            )

    def _psutil(self) -> Any:
        import psutil

        assert self.process is not None
        return psutil.Process(self.process.pid)

    def rss(self) -> int:
        """Resident memory of the server process, in bytes."""
        return self._psutil().memory_info().rss

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far."""
        times = self._psutil().cpu_times()
        return times.user + times.system

    def stop(self, timeout: float = 20) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def write_file(self, name: str, text: str) -> str:
        (self.root / name).write_text(text, encoding="utf-8")
        return name

    def copy_file(self, source: Path, name: str) -> str:
        shutil.copyfile(source, self.root / name)
        return name

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=300
        )

    def ws_url(self, path: str) -> str:
        return self.url.replace("http", "ws", 1) + path


@contextlib.contextmanager
def running(servers: Sequence[BenchServer]) -> Any:
    """Start ``servers`` together (launched at once, then waited for); stop them after."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


# -- clients ----------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], Any], doc: Doc, timeout: float = 300) -> Any:
    """Wait until ``predicate()`` is true, re-checking after every transaction of ``doc``."""
    return await eventually(predicate, doc, timeout=timeout)


@dataclass
class ByteCount:
    """Websocket messages a client received: how many, and their payload bytes."""

    frames: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.frames += 1
        self.bytes += size

    def reset(self) -> None:
        self.frames = self.bytes = 0


class CountingWebsocket(HttpxWebsocket):
    """pycrdt's httpx websocket channel, counting what it receives into ``count``."""

    def __init__(self, websocket: Any, path: str, count: ByteCount) -> None:
        super().__init__(websocket, path)
        self.count = count

    async def recv(self) -> bytes:
        message = await super().recv()
        self.count.add(len(message))
        return message


@contextlib.asynccontextmanager
async def ynotebook_client(
    server: BenchServer,
    http: httpx.AsyncClient,
    path: str,
    *,
    cells: int = 1,
    count: ByteCount | None = None,
) -> AsyncIterator[YNotebook]:
    """A JupyterLab-like client (jupyter-collaboration's protocol): ``PUT session``, then a
    YNotebook synced over the room; entered once the document holds ``cells`` cells. With
    ``count``, the websocket messages it receives are counted there."""
    response = await http.put(
        f"/api/collaboration/session/{path}",
        content=json.dumps({"format": "json", "type": "notebook"}),
    )
    response.raise_for_status()
    session = response.json()
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    ynb = YNotebook(Doc())
    meta = ynb.ydoc.get("meta", type=Map)
    ws: AsyncWebSocketSession
    async with aconnect_ws(url, http, max_message_size_bytes=1 << 30) as ws:
        channel = HttpxWebsocket(ws, room) if count is None else CountingWebsocket(ws, room, count)
        async with Provider(ynb.ydoc, channel):
            await wait_until(lambda: len(meta) > 0 and len(ynb.ycells) >= cells, ynb.ydoc)
            yield ynb


class CountingLiveNotebook(LiveNotebook):
    """Our SyncDB client, counting the websocket messages it receives into ``count``."""

    def __init__(self, *args: Any, count: ByteCount, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = count

    def _receive(self, frame: bytes, ws: Any) -> None:
        self.count.add(len(frame))
        super()._receive(frame, ws)


@contextlib.asynccontextmanager
async def counting_live_notebook(
    client: CocalcSyncClient, path: str, count: ByteCount
) -> AsyncIterator[LiveNotebook]:
    """``client.open(path)`` with a ``CountingLiveNotebook``; closed on exit."""
    info = await client.request("GET", client.notebook_url(path), records="false")
    notebook = CountingLiveNotebook(client, info["path"], info["file_id"], count=count)
    await notebook.start()
    try:
        yield notebook
    finally:
        await notebook.close()


def cell_record(notebook: LiveNotebook, cell_id: str) -> dict[str, Any]:
    return notebook.db.peek(("cell", cell_id)) or {}


def ordered_outputs(output: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A SyncDB ``output`` map (``{"0": …, "1": …}``) as a list."""
    output = output or {}
    return [output[k] for k in sorted(output, key=int) if output[k] is not None]


# -- kernels, as the browser talks to them ----------------------------------------------------


async def new_session(http: httpx.AsyncClient, path: str, kernel: str = "python3") -> str:
    """``POST /api/sessions`` for a notebook, as JupyterLab does when it opens one; the kernel
    id."""
    response = await http.post(
        "/api/sessions",
        json={
            "path": path,
            "name": Path(path).name,
            "type": "notebook",
            "kernel": {"name": kernel},
        },
    )
    response.raise_for_status()
    return response.json()["kernel"]["id"]


class KernelChannel:
    """One ``/api/kernels/<id>/channels`` websocket, jupyter_server's JSON protocol (the default
    subprotocol): every message ``{"header", "parent_header", "metadata", "content",
    "channel", …}`` as one text frame."""

    def __init__(self, ws: AsyncWebSocketSession, session: str) -> None:
        self.ws = ws
        self.session = session

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        server: BenchServer,
        http: httpx.AsyncClient,
        kernel_id: str,
        *,
        query: str = "",
    ) -> AsyncIterator[KernelChannel]:
        session = uuid.uuid4().hex
        url = server.ws_url(f"/api/kernels/{kernel_id}/channels?session_id={session}{query}")
        ws: AsyncWebSocketSession
        async with aconnect_ws(url, http) as ws:
            yield cls(ws, session)

    @property
    def raw_socket(self) -> socket.socket:
        return self.ws.stream.get_extra_info("socket")

    def set_client_nodelay(self, on: bool) -> None:
        """TCP_NODELAY on this end of the connection (asyncio sockets start with it on)."""
        self.raw_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(on))

    async def send_execute(self, code: str, *, silent: bool = False) -> str:
        """Send an ``execute_request``; its msg_id."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.session,
            "username": "bench",
            "version": "5.3",
            "date": datetime.now(UTC).isoformat(),
        }
        content = {
            "code": code,
            "silent": silent,
            "store_history": not silent,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
        await self.ws.send_text(json.dumps(message))
        return msg_id

    async def receive(self) -> dict[str, Any]:
        return json.loads(await self.ws.receive_text())

    async def replies(self, msg_id: str) -> AsyncIterator[dict[str, Any]]:
        """The messages answering ``msg_id``, until both its ``execute_reply`` and the kernel's
        ``status: idle`` have come (other messages are skipped)."""
        reply = idle = False
        while not (reply and idle):
            message = await self.receive()
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message.get("msg_type") or message["header"]["msg_type"]
            if kind == "execute_reply":
                reply = True
            elif kind == "status" and message["content"].get("execution_state") == "idle":
                idle = True
            yield message

    async def execute(self, code: str, *, silent: bool = False) -> dict[str, Any]:
        """Run ``code``; the ``execute_reply``."""
        msg_id = await self.send_execute(code, silent=silent)
        reply: dict[str, Any] = {}
        async for message in self.replies(msg_id):
            if message["msg_type"] == "execute_reply":
                reply = message
        return reply


class LabRunner:
    """What the JupyterLab frontend does when a user runs a cell of a collaborative notebook
    on the stock stack: the outputs that come over the kernel websocket are written into the
    user's YNotebook, one transaction per message, which the Provider sends to the room.

    As JupyterLab 4 (``CodeCell.execute``, ``OutputAreaModel``, and @jupyter/ydoc's
    ``YCodeCell``): the run clears the cell's outputs and count; a stream message whose name
    is the last output's is appended to that output's ``text`` (a ``Text``:
    ``appendStreamOutput``), any other output is appended as a new ``Map`` (a stream's text as
    a ``Text``); the execute_reply sets the count. Plain text only: no ``\\r``/``\\b`` here.
    """

    def __init__(self, ynb: YNotebook, channel: KernelChannel) -> None:
        self.ynb = ynb
        self.channel = channel

    def _cell(self, index: int) -> Map:
        return self.ynb.ycells[index]

    async def run(self, index: int) -> tuple[dict[str, Any], float]:
        """Run cell ``index``; its execute_reply and the ``perf_counter`` when the kernel was
        idle again (reply and ``status: idle`` received)."""
        cell = self._cell(index)
        with self.ynb.ydoc.transaction():
            cell["outputs"].clear()
            cell["execution_count"] = None
            cell["execution_state"] = "running"
        msg_id = await self.channel.send_execute(str(cell["source"]))
        reply: dict[str, Any] = {}
        async for message in self.channel.replies(msg_id):
            kind = message["msg_type"]
            if kind == "execute_reply":
                reply = message
            elif message.get("channel") == "iopub":
                self._output(cell, kind, message["content"])
        idle = time.perf_counter()
        with self.ynb.ydoc.transaction():
            cell["execution_count"] = reply.get("content", {}).get("execution_count")
            cell["execution_state"] = "idle"
        return reply, idle

    @staticmethod
    def _output(cell: Map, kind: str, content: dict[str, Any]) -> None:
        outputs: Array = cell["outputs"]
        if kind == "stream":
            last = outputs[len(outputs) - 1] if len(outputs) else None
            if (
                last is not None
                and last.get("output_type") == "stream"
                and last.get("name") == content["name"]
            ):
                text: Text = last["text"]
                text += content["text"]
            else:
                outputs.append(
                    Map(
                        {
                            "output_type": "stream",
                            "name": content["name"],
                            "text": Text(content["text"]),
                        }
                    )
                )
        elif kind in ("execute_result", "display_data"):
            output = {
                "output_type": kind,
                "data": content.get("data", {}),
                "metadata": content.get("metadata", {}),
            }
            if kind == "execute_result":
                output["execution_count"] = content.get("execution_count")
            outputs.append(Map(output))
        elif kind == "error":
            outputs.append(Map({"output_type": "error", **content}))
        elif kind == "clear_output":
            outputs.clear()


# -- server resources and files ---------------------------------------------------------------


class _Sampler:
    """Runs ``_sample_once`` every ``interval`` s on a thread of its own while entered (a
    thread, so a busy event loop in the benchmark process does not skip samples)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._resources():
            while not self._stop.is_set():
                self._sample_once()
                self._stop.wait(self.interval)

    def _resources(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def _sample_once(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class RssSampler(_Sampler):
    """The peak resident memory of a server process, sampled every ``interval`` s."""

    def __init__(self, server: BenchServer, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.server = server
        self.before = server.rss()
        self.peak = self.before
        self.samples = 0

    def _sample_once(self) -> None:
        self.peak = max(self.peak, self.server.rss())
        self.samples += 1


class StallProbe(_Sampler):
    """How long the server's event loop stays unavailable: ``GET /api/status`` every
    ``interval`` s while entered; ``worst`` is the slowest answer (s), ``at`` when it was
    asked (``perf_counter``)."""

    def __init__(self, server: BenchServer, interval: float = 0.02) -> None:
        super().__init__(interval)
        self.server = server
        self.worst = 0.0
        self.at = 0.0
        self.requests = 0
        self._http: httpx.Client | None = None

    def _resources(self) -> contextlib.AbstractContextManager[Any]:
        headers = {"Authorization": f"token {self.server.token}"}
        self._http = httpx.Client(base_url=self.server.url, headers=headers, timeout=300)
        return self._http

    def _sample_once(self) -> None:
        assert self._http is not None
        start = time.perf_counter()
        self._http.get("/api/status").raise_for_status()
        elapsed = time.perf_counter() - start
        self.requests += 1
        if elapsed > self.worst:
            self.worst, self.at = elapsed, start


async def wait_saved(
    path: Path,
    check: Callable[[nbformat.NotebookNode], bool],
    *,
    since: float,
    quiet: float = 1.5,
    timeout: float = 120,
) -> tuple[nbformat.NotebookNode, float]:
    """Wait until the server has saved ``path`` after ``since`` (an mtime) with content that
    passes ``check``, and left it alone for ``quiet`` seconds; the notebook and the time
    (``perf_counter``) the file was first seen in that state."""
    deadline = time.monotonic() + timeout
    seen: tuple[float, float] | None = None  # (mtime, perf_counter when seen)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # the server process writes the file: nothing to await
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if mtime <= since:
            continue
        if seen is None or seen[0] != mtime:
            seen = (mtime, time.perf_counter())
            continue
        if time.perf_counter() - seen[1] < quiet:
            continue
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception:
            seen = None  # written while read
            continue
        if check(notebook):
            return notebook, seen[1]
    raise TimeoutError(f"{path} was not saved as expected within {timeout} s")


def code_notebook(cells: Sequence[tuple[str, str]]) -> str:
    """ipynb text of code cells ``(id, source)``, without outputs."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    nb.cells = [nbformat.v4.new_code_cell(source, id=cell_id) for cell_id, source in cells]
    return nbformat.writes(nb)


def load_average() -> str:
    """The 1/5/15-minute load averages, for the notes of a measurement."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())
