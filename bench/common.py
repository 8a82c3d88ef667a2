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
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import httpx
import nbformat
from httpx_ws import aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Provider
from pycrdt.websocket.websocket import HttpxWebsocket

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def __init__(self, stack: Stack, workdir: Path, token: str = "bench-token") -> None:
        self.stack = stack
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
        env = dict(os.environ)
        for var, sub in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("IPYTHONDIR", "ipython"),
        ):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(self.state / sub)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        env.pop("VIRTUAL_ENV", None)
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
        config.setdefault("ServerApp", {})["jpserver_extensions"] = extensions
        path = self.state / "config" / "jupyter_server_config.json"
        path.write_text(json.dumps(config, indent=1))

    def launch(self) -> None:
        """Start the process (``wait_ready`` waits until it answers)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self._write_config()
        args = [
            str(self.stack.python),
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
        ]
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
    changed = asyncio.Event()
    subscription = doc.observe(lambda _event: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                value = predicate()
                if value:
                    return value
                await changed.wait()
    finally:
        doc.unobserve(subscription)


@contextlib.asynccontextmanager
async def ynotebook_client(
    server: BenchServer, http: httpx.AsyncClient, path: str, *, cells: int = 1
) -> AsyncIterator[YNotebook]:
    """A JupyterLab-like client (jupyter-collaboration's protocol): ``PUT session``, then a
    YNotebook synced over the room; entered once the document holds ``cells`` cells."""
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
    async with (
        aconnect_ws(url, http, max_message_size_bytes=1 << 30) as ws,
        Provider(ynb.ydoc, HttpxWebsocket(ws, room)),
    ):
        await wait_until(lambda: len(meta) > 0 and len(ynb.ycells) >= cells, ynb.ydoc)
        yield ynb
