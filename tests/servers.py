"""A real ``jupyter server`` / ``jupyter lab`` in a subprocess, with isolated Jupyter state."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fork_server
import httpx
import kernel_ports
import psutil
import server_errors
import stack_dumps

#: server extensions the test extras bring along (nbgrader, whose checksums and student versions
#: are compared with ours; the third-party clients of tests/interop, which call their functions
#: or open their documents without them) that no test server needs: off, since they take
#: seconds to load
UNNEEDED_EXTENSIONS = dict.fromkeys(
    [
        "nbgrader.server_extensions.formgrader",
        "nbgrader.server_extensions.validate_assignment",
        "nbgrader.server_extensions.assignment_list",
        "nbgrader.server_extensions.course_list",
        "jupyter_ai_tools",
        "jupyterlab_chat",
        "jupyterlab_commands_toolkit",
    ],
    False,
)

#: JupyterLab extensions those clients' packages and nbgrader bring along (a chat panel, a cell
#: footer, AI commands, nbgrader's menus): off in the JupyterLab the browser tests drive, which
#: is stock JupyterLab
UNNEEDED_LAB_EXTENSIONS = dict.fromkeys(
    [
        "@jupyter/nbgrader",
        "jupyterlab-ai-commands",
        "jupyterlab-cell-input-footer-extension",
        "jupyterlab-chat-extension",
        "jupyterlab-commands-toolkit",
        "jupyterlab-diff",
    ],
    True,
)


#: prints the names of the server extensions that the Jupyter config folders of an interpreter
#: enable or disable (run by that interpreter, in the server's environment)
_CONFIGURED_EXTENSIONS = """
import json, pathlib
from jupyter_core.paths import jupyter_config_path
names = set()
for folder in jupyter_config_path():
    for f in pathlib.Path(folder, "jupyter_server_config.d").glob("*.json"):
        names.update(json.loads(f.read_text()).get("ServerApp", {}).get("jpserver_extensions", {}))
print(json.dumps(sorted(names)))
"""


def configured_extensions(python: str | Path, env: dict[str, str]) -> list[str]:
    """The server extensions named in the config folders ``python`` sees with ``env`` (to
    switch off every one a server should not load: ``jpserver_extensions`` in the server's own
    config file wins over them)."""
    result = subprocess.run(
        [str(python), "-c", _CONFIGURED_EXTENSIONS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)


@functools.cache
def environment_extensions(python: str) -> list[str]:
    """The server extensions the installation of ``python`` configures (``configured_extensions``
    without a server's own config folder: the same for every test server)."""
    return configured_extensions(
        python, {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_DIR"}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(state: Path) -> dict[str, str]:
    """This process's environment with every Jupyter and IPython directory under ``state``."""
    env = dict(os.environ)
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        (state / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(state / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def server_command(python: str, app: str, port: int, token: str, root: Path) -> list[str]:
    """The command line of a loopback-only Jupyter server for tests and benchmarks."""
    return [
        str(python),
        "-m",
        app,
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.allow_root=True",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]


def launch(
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
    *,
    watch_errors: bool = True,
) -> Any:
    """Start ``args`` in a session of its own (so its children go down with it), logging to
    ``log_path`` (read for errors at the end of the test unless ``watch_errors`` is false:
    ``server_errors``). A Jupyter server of this interpreter is forked from the worker's fork
    server (``fork_server``) when it can be."""
    if watch_errors:
        server_errors.watch(log_path)
    if fork_server.enabled() and fork_server.forkable(args):
        forked = fork_server.spawn(args, env, log_path, cwd)
        if forked is not None:
            return forked
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    try:
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        log.close()


#: what a server logs when another process took its port between ``free_port`` and its start
PORT_TAKEN = (b"is not available", b"already in use")
#: starts tried on a fresh port each (test workers start servers in parallel)
PORT_ATTEMPTS = 3


def start_listening(
    args_for_port: Callable[[int], list[str]],
    port: int,
    env: dict[str, str],
    log_path: Path,
    *,
    name: str,
    path: str,
    timeout: float,
    params: dict | None = None,
    watch_errors: bool = True,
) -> tuple[Any, int]:
    """Launch ``args_for_port(port)`` and wait until ``path`` answers on ``port``: the process
    and its port. ``free_port`` only finds a port that was free: if another process took it
    before the server bound it, the failed start's lines are taken out of the log and the
    server starts again on another port."""
    for attempt in range(PORT_ATTEMPTS):
        logged = log_path.stat().st_size if log_path.exists() else 0
        process = launch(args_for_port(port), env, log_path, watch_errors=watch_errors)
        try:
            url = f"http://127.0.0.1:{port}{path}"
            wait_until_answering(process, url, log_path, name=name, timeout=timeout, params=params)
            return process, port
        except RuntimeError:
            failed_start = log_path.read_bytes()[logged:]
            if attempt + 1 == PORT_ATTEMPTS or not any(m in failed_start for m in PORT_TAKEN):
                raise
            os.truncate(log_path, logged)
            port = free_port()
    raise AssertionError("unreachable")


def wait_until_answering(
    process: Any,
    url: str,
    log_path: Path,
    *,
    name: str,
    timeout: float,
    params: dict | None = None,
) -> None:
    """Return once ``url`` answers 200; ``RuntimeError`` ("<name> exited") if ``process``
    exits first."""
    deadline = time.monotonic() + timeout
    # one client for every poll: each new one builds an SSL context (~30 ms of CPU, taken
    # from the server starting meanwhile)
    with httpx.Client(params=params, timeout=1) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {tail(log_path)}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # waiting for another process to listen: nothing to await
    raise TimeoutError(f"{name} did not start: {tail(log_path)}")


def stop_process(process: Any, timeout: float, *, group: bool = False) -> None:
    """SIGTERM (to its whole session with ``group``), then SIGKILL to the session if it lingers."""
    if process is None or process.poll() is not None:
        return
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:]


class ServerProcess:
    """Starts, kills and restarts a Jupyter server on ``root`` with this extension enabled.

    Everything the server writes outside ``root`` (config, data, runtime, IPython, the store,
    the file-id database) lives under ``state``, so a restart sees the same state.
    """

    #: whether a test fails on the errors this server logs (``server_errors``)
    watch_errors = True

    def __init__(
        self,
        root: Path,
        state: Path,
        *,
        app: str = "jupyter_server",
        config: dict[str, Any] | None = None,
        token: str = "secret-token",
        python: str | Path = sys.executable,
    ) -> None:
        self.root = root
        self.python = python
        self.state = state
        self.app = app
        self.token = token
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.config = config or {}
        self.log_path = state / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return isolated_env(self.state)

    def write_config(self) -> None:
        extensions: dict[str, bool] = {}
        if self.app == "jupyter_server":
            # the environment's other extensions (JupyterLab, notebook, LSP…) off, as in the
            # in-process servers: JupyterLab's alone imports its extension manager's and runs
            # yarn at every start (a ``jupyter lab`` server keeps them)
            extensions = dict.fromkeys(environment_extensions(str(self.python)), False)
        config = {
            "ServerApp": {
                "jpserver_extensions": {
                    **extensions,
                    **UNNEEDED_EXTENSIONS,
                    "jupyter_cocalc_sync": True,
                    "jupyter_server_fileid": True,
                    "jupyter_server_ydoc": False,
                },
            },
            "CocalcSync": {"store_path": str(self.state / "cocalc.db")},
            "BaseFileIdManager": {"db_path": str(self.state / "file_id.db")},
        }
        for section, values in self.config.items():
            config.setdefault(section, {}).update(values)
        (self.state / "config").mkdir(parents=True, exist_ok=True)
        (self.state / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
        if str(self.python) == sys.executable:  # (another venv's server may lack jupyter_client)
            lines = kernel_ports.config_file_lines() + stack_dumps.config_file_lines()
            (self.state / "config" / "jupyter_server_config.py").write_text(lines)
        labconfig = self.state / "config" / "labconfig"
        labconfig.mkdir(exist_ok=True)
        page_config = {"disabledExtensions": UNNEEDED_LAB_EXTENSIONS}
        (labconfig / "page_config.json").write_text(json.dumps(page_config))

    def start(self, timeout: float = 60, *, ready_path: str = "/api/status") -> ServerProcess:
        """Start the server and wait until ``ready_path`` answers 200 (``/api`` for a server
        whose status route fails by design)."""
        self.write_config()

        def args_for_port(port: int) -> list[str]:
            args = server_command(str(self.python), self.app, port, self.token, self.root)
            if self.app == "jupyterlab":
                args += [
                    f"--LabApp.user_settings_dir={self.state / 'lab-settings'}",
                    f"--LabApp.workspaces_dir={self.state / 'lab-workspaces'}",
                ]
            return args

        self.process, self.port = start_listening(
            args_for_port,
            self.port,
            self.env(),
            self.log_path,
            name="server",
            path=ready_path,
            timeout=timeout,
            params={"token": self.token},
            watch_errors=self.watch_errors,
        )
        return self

    def kill(self) -> None:
        """``kill -9`` the server and its kernels, as a crash of its machine would.

        The kernels run in sessions of their own (jupyter_client starts them so): killing the
        server's process group alone would leave them running, and a kernel still starting
        would bind ports the next server has been handed since.
        """
        if self.process is not None and self.process.poll() is None:
            kernels = psutil.Process(self.process.pid).children(recursive=True)
            os.killpg(self.process.pid, signal.SIGKILL)
            for kernel in kernels:
                with contextlib.suppress(psutil.NoSuchProcess):
                    kernel.kill()
            psutil.wait_procs(kernels, timeout=10)
            self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        # SIGTERM stops the server gracefully; a second SIGINT could land in the middle of the
        # shutdown the first one started, and hang it
        stop_process(self.process, timeout)

    def restart(self) -> ServerProcess:
        self.kill()
        self.port = free_port()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_exit(self, timeout: float) -> int:
        """The server's exit status once it has exited by itself; a failure with its stacks
        (``stack_dumps``) if it is still running after ``timeout`` s."""
        assert self.process is not None
        try:
            return int(self.process.wait(timeout))
        except subprocess.TimeoutExpired:
            if str(self.python) == sys.executable:  # (its config installed the dumps)
                report = stack_dumps.hang_report(self.process.pid, self.log_path)
            else:
                report = tail(self.log_path)
            raise AssertionError(
                f"the server had not exited after {timeout} s:\n{report}"
            ) from None


class GatewayProcess:
    """A real kernel gateway (``jupyter kernelgateway``, from PyPI) on loopback."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = state / "gateway.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> GatewayProcess:
        def args_for_port(port: int) -> list[str]:
            return [
                sys.executable,
                "-m",
                "kernel_gateway",  # (what ``jupyter kernelgateway`` runs: forked when it can be)
                "--ip=127.0.0.1",
                f"--port={port}",
                # jupyter_server's gateway client lists the gateway's kernels
                "--JupyterWebsocketPersonality.list_kernels=True",
            ]

        self.state.mkdir(parents=True, exist_ok=True)
        self.process, self.port = start_listening(
            args_for_port,
            self.port,
            isolated_env(self.state),
            self.log_path,
            name="gateway",
            path="/api/kernelspecs",
            timeout=timeout,
        )
        return self

    def stop(self) -> None:
        stop_process(self.process, 20, group=True)  # the gateway's kernels too
