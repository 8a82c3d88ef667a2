"""The JupyterLab servers the browser tests drive: started once per configuration and shared by
the tests of a session (each test works in a folder of its own), stopped at the session's end.

A JupyterLab server takes seconds to start and to stop; a test needs a fresh notebook, not a
fresh server. Each test gets a ``LabFolder``: the shared server, seen through a folder of the
root that only this test uses; at its end the kernels of the notebooks it opened are shut down.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import server_errors
from process_guard import owned_by_session
from servers import ServerProcess

import jupyter_cocalc_sync

#: the frontend extension's package name (labextension/package.json)
LABEXTENSION_NAME = "jupyter-cocalc-sync"

#: the server config of the browser tests: quick autosave and file polls
DEFAULT_LAB_CONFIG: dict[str, dict[str, Any]] = {
    "CocalcSync": {"autosave_delay": 0.2, "file_poll_interval": 0.2},
}

#: JupyterLab settings that spare its start and its pages work: no news feed, no update
#: check, an extension manager that asks no package index
FAST_LAB_CONFIG: dict[str, dict[str, Any]] = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly",
    },
}


def write_lab_settings(settings_dir: Path) -> None:
    """Turn off news and update checks: on a fresh profile their toast covers the notebook."""
    target = settings_dir / "@jupyterlab" / "apputils-extension"
    target.mkdir(parents=True, exist_ok=True)
    (target / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


def checkout_labextension(tmp_path: Path) -> Path:
    """A labextensions folder holding this checkout's built frontend extension, for
    ``LabApp.extra_labextensions_path`` (searched first): the tests run the checkout's build,
    not one an earlier install left in the environment."""
    built = Path(jupyter_cocalc_sync.__file__).parent / "labextension"
    if not (built / "package.json").exists():
        raise RuntimeError(
            f"the frontend extension is not built ({built} is missing): "
            "pip install -e . builds it (or jlpm build in labextension/)"
        )
    folder = tmp_path / "labextensions"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / LABEXTENSION_NAME
    if not link.exists():
        link.symlink_to(built, target_is_directory=True)
    return folder


def lab_process(tmp_path: Path, config: dict[str, Any] | None = None) -> ServerProcess:
    """JupyterLab (this extension instead of jupyter_server_ydoc) on ``tmp_path/"root"``, not
    started yet.

    ``window.jupyterapp`` is exposed, so tests can read frontend state that has no DOM
    (e.g. the file hash a notebook's context believes is on disk).
    """
    root = tmp_path / "root"
    root.mkdir(parents=True, exist_ok=True)
    merged: dict[str, dict[str, Any]] = {}
    for section, values in [*FAST_LAB_CONFIG.items(), *(config or {}).items()]:
        merged.setdefault(section, {}).update(values)
    lab_config = merged.setdefault("LabApp", {})
    lab_config.setdefault("expose_app_in_browser", True)
    lab_config.setdefault("extra_labextensions_path", [str(checkout_labextension(tmp_path))])
    lab = ServerProcess(root, tmp_path / "state", app="jupyterlab", config=merged)
    write_lab_settings(lab.state / "lab-settings")
    return lab


def start_lab(tmp_path: Path, config: dict[str, Any] | None = None) -> ServerProcess:
    """``lab_process`` started: it answers once this returns."""
    return lab_process(tmp_path, config).start()


def stop_lab(server: ServerProcess, timeout: float = 15) -> None:
    """Stop ``server`` with SIGTERM, jupyter_server's clean stop (kernels shut down, then
    exit), which takes seconds; fail if it takes ``timeout`` (it hung, e.g. on an AnyIO worker
    thread: ``jupyter_cocalc_sync.worker_threads``)."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError(
            f"the JupyterLab server did not stop within {timeout} s of SIGTERM; its log ends "
            f"with:\n{server.log()[-2000:]}"
        ) from None


class LabFolder:
    """One test's view of a JupyterLab server: a folder of the server's root of its own.

    Notebook paths the server sees (URLs, sessions, REST routes) are ``path(name)``; files are
    under ``root``. ``end()`` shuts down the kernels of the notebooks opened in the folder.
    """

    def __init__(self, server: ServerProcess, name: str) -> None:
        self.server = server
        self.name = name
        self.root = server.root / name
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.token

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def path(self, notebook: str) -> str:
        """``notebook`` (a name in the folder) as the server names it."""
        return f"{self.name}/{notebook}"

    def api(self, route: str) -> str:
        """The URL of ``/api/<route>``."""
        return f"{self.server.url}/api/{route}"

    def log(self) -> str:
        return self.server.log()

    def restart(self) -> None:
        """Kill the server (kernels and all) and start it again, on a new port; it stays the
        session's (the process guard checks it at the session's end)."""
        self.server.restart()
        assert self.server.process is not None
        owned_by_session(self.server.process.pid)

    def sessions(self) -> list[dict[str, Any]]:
        """The kernel sessions of notebooks in this folder."""
        response = httpx.get(self.api("sessions"), params={"token": self.token}, timeout=60)
        response.raise_for_status()
        return [s for s in response.json() if s["path"].startswith(f"{self.name}/")]

    def end(self) -> None:
        """Shut down the kernels of the notebooks opened in the folder (the server's clean
        stop would have, with a server of the test's own)."""
        if self.server.process is None or self.server.process.poll() is not None:
            return
        for session in self.sessions():
            response = httpx.delete(
                self.api(f"sessions/{session['id']}"), params={"token": self.token}, timeout=60
            )
            if response.status_code != 404:  # (404: the session ended meanwhile)
                response.raise_for_status()


class LabServers:
    """JupyterLab servers by configuration, started on first use under ``tmp_path_factory``."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.servers: dict[str, ServerProcess] = {}

    def get(self, config: dict[str, Any]) -> ServerProcess:
        key = json.dumps(config, sort_keys=True)
        server = self.servers.get(key)
        if server is None or server.process is None or server.process.poll() is not None:
            server = start_lab(self.tmp_path_factory.mktemp("lab"), config)
            self.servers[key] = server
        return server

    def stop_all(self, allowed_errors: list[str]) -> None:
        """Stop every server; fail naming what one logged at ERROR while stopping (each test's
        own check saw what was logged before)."""
        problems = []
        for server in self.servers.values():
            offset = server.log_path.stat().st_size if server.log_path.exists() else 0
            try:
                stop_lab(server)
            except AssertionError as e:
                problems.append(str(e))
            with server.log_path.open("rb") as log:
                log.seek(offset)
                lines = log.read().decode(errors="replace").splitlines()
            logged = server_errors.error_entries(lines)
            if unexpected := server_errors.unexpected(logged, allowed_errors):
                listed = "\n".join(unexpected)
                problems.append(f"a JupyterLab server logged while stopping:\n{listed}")
        self.servers.clear()
        if problems:
            raise AssertionError("\n\n".join(problems))
