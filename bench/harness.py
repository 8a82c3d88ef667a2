"""The two server stacks and ``BenchServer``, a real ``jupyter server`` subprocess of one.

* **stock**: jupyter-collaboration's server (``jupyter_server_ydoc`` + ``jupyter_server_fileid``)
  from the virtualenv ``bench/.venv-stock`` (created from ``requirements-stock.txt`` on first
  use), because installing it next to this extension would take over the same routes;
* **ours**: ``jupyter_cocalc_sync`` + ``jupyter_server_fileid`` from the running interpreter.

Each server gets its own root, isolated Jupyter/IPython dirs, binds 127.0.0.1 only, and has
every other server extension switched off (checked against its log after start).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from report import progress

# the test suite's helpers for real servers, shared rather than copied
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import configured_extensions, free_port, isolated_env, server_command

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
STOCK_VENV = BENCH_DIR / ".venv-stock"
STOCK_REQUIREMENTS = BENCH_DIR / "requirements-stock.txt"
RESULTS_DIR = BENCH_DIR / "results"
#: the server extension in ``server_plugins.py`` that measures event-loop stalls in the server
LOOP_PROBE_EXTENSION = "server_plugins"

STOCK_STORE = "ystore.db"  # jupyter-server-ydoc's SQLiteYStore
OURS_STORE = "cocalc.db"

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
    #: the SQLite file under the server's state folder that logs the documents' updates
    store: str = ""

    def versions(self) -> dict[str, str]:
        return package_versions(self.python, self.packages)


def stock_stack() -> Stack:
    def config(state: Path) -> dict[str, Any]:
        return {
            "SQLiteYStore": {"db_path": str(state / STOCK_STORE)},
            "YDocExtension": {"session_store_path": str(state / "sessions.json")},
            "BaseFileIdManager": {"db_path": str(state / "file_id.db")},
        }

    return Stack(
        "stock",
        ensure_stock_venv(),
        ("jupyter_server_ydoc", "jupyter_server_fileid"),
        config,
        STOCK_PACKAGES,
        STOCK_STORE,
    )


def ours_stack() -> Stack:
    def config(state: Path) -> dict[str, Any]:
        return {
            "ServerApp": {
                "kernel_manager_class": "jupyter_cocalc_sync.pool.manager.PoolingKernelManager"
            },
            # no benchmark runs code: a pooled kernel booting would only add noise
            "KernelPool": {"size": 0},
            "CocalcSync": {"store_path": str(state / OURS_STORE)},
            "BaseFileIdManager": {"db_path": str(state / "file_id.db")},
        }

    return Stack(
        "ours",
        Path(sys.executable),
        ("jupyter_cocalc_sync", "jupyter_server_fileid"),
        config,
        OURS_PACKAGES,
        OURS_STORE,
    )


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
        loop_probe: bool = False,
    ) -> None:
        self.stack = stack
        #: configuration on top of the stack's (per section, e.g. ``{"ServerApp": {…}}``)
        self.extra_config = config or {}
        #: folders the server process imports from first (for classes named in ``config``)
        self.pythonpath = tuple(pythonpath)
        #: the stack's extensions, plus the event-loop stall probe (``server_plugins``) if asked
        self.extensions = self.stack.extensions
        if loop_probe:
            self.extensions += (LOOP_PROBE_EXTENSION,)
            self.pythonpath += (BENCH_DIR,)
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
        installed = configured_extensions(self.stack.python, self.env())
        extensions = {name: False for name in installed}
        extensions.update(dict.fromkeys(self.extensions, True))
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
        # one client for every poll: each new one builds an SSL context (tens of ms of CPU,
        # taken from the servers starting meanwhile)
        with httpx.Client(params={"token": self.token}) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} server exited:\n{self.log()[-3000:]}")
                try:
                    if client.get(f"{self.url}/api/status").status_code == 200:
                        self._check_extensions()
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)  # another process starting to listen: nothing to await
        raise TimeoutError(f"{self.name} server did not start:\n{self.log()[-3000:]}")

    def loaded_extensions(self) -> list[str]:
        """The extensions the server linked and loaded. (Ours lists an enabled
        ``jupyter_server_ydoc`` package with no extension points, for the extensions that look
        for it: the server logs it as loaded, never as linked.)"""

        def named(marker: str) -> set[str]:
            return {
                line.split(marker)[0].rsplit("] ", 1)[-1].strip()
                for line in self.log().splitlines()
                if marker in line
            }

        linked = named(" | extension was successfully linked.")
        return sorted(linked & named(" | extension was successfully loaded."))

    def _check_extensions(self) -> None:
        loaded = self.loaded_extensions()
        expected = sorted(self.extensions)
        if expected != loaded:
            raise RuntimeError(f"{self.name} server loaded {loaded}, expected {expected}")

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

    @property
    def store_path(self) -> Path:
        """The SQLite file that logs this server's document updates."""
        return self.state / self.stack.store

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
