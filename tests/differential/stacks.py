"""The two servers the differential suite compares: jupyter-collaboration's (the oracle) and ours.

The stock stack (``jupyter_server`` + ``jupyter-server-ydoc``, pinned in
``bench/requirements-stock.txt``) lives in ``.venv-stock`` at the repository root, which
``tests/run.sh`` creates: installed next to this extension it would serve the same routes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from servers import ServerProcess, configured_extensions, isolated_env

REPO = Path(__file__).resolve().parents[2]
STOCK_VENV = REPO / ".venv-stock"
STOCK_PYTHON = STOCK_VENV / "bin" / "python"
STOCK_REQUIREMENTS = REPO / "bench" / "requirements-stock.txt"
#: written by ``tests/run.sh`` once the pinned requirements are installed
STOCK_STAMP = STOCK_VENV / ".installed-requirements"

#: seconds a document stays loaded after its last client left, on both servers: short, so the
#: unload tests need not wait a minute, long enough that a client reconnecting at once finds it
CLEANUP_DELAY = 1.0


def stock_venv_problem() -> str | None:
    """Why the stock stack cannot run here, or None."""
    if not STOCK_PYTHON.exists():
        return f"{STOCK_VENV} is missing: `bash tests/run.sh` creates it"
    if not STOCK_STAMP.exists() or STOCK_STAMP.read_text() != STOCK_REQUIREMENTS.read_text():
        return f"{STOCK_VENV} is not up to date with {STOCK_REQUIREMENTS}: run `bash tests/run.sh`"
    return None


class StockServer(ServerProcess):
    """jupyter-collaboration's server (``jupyter_server_ydoc``) from ``.venv-stock``."""

    #: the oracle: its errors are not this package's (the suite compares what it does)
    watch_errors = False

    def __init__(self, root: Path, state: Path) -> None:
        super().__init__(root, state, python=STOCK_PYTHON, token="stock-token")

    def env(self) -> dict[str, str]:
        env = isolated_env(self.state)
        # the worktree on PYTHONPATH would make this extension importable in the stock venv
        for name in ("PYTHONPATH", "VIRTUAL_ENV"):
            env.pop(name, None)
        return env

    def write_config(self) -> None:
        extensions: dict[str, bool] = {
            name: False for name in configured_extensions(self.python, self.env())
        }
        extensions.update(
            {
                "jupyter_cocalc_sync": False,
                "jupyter_server_ydoc": True,
                "jupyter_server_fileid": True,
            }
        )
        config: dict[str, Any] = {
            "ServerApp": {"jpserver_extensions": extensions},
            "YDocExtension": {
                "document_cleanup_delay": CLEANUP_DELAY,
                "session_store_path": str(self.state / "sessions.json"),
            },
            "SQLiteYStore": {"db_path": str(self.state / "ystore.db")},
            "BaseFileIdManager": {"db_path": str(self.state / "file_id.db")},
        }
        (self.state / "config").mkdir(parents=True, exist_ok=True)
        path = self.state / "config" / "jupyter_server_config.json"
        path.write_text(json.dumps(config))

    def unloaded(self, file_id: str, log_from: int) -> bool:
        """Whether the room of ``file_id`` was deleted since log offset ``log_from``."""
        return f"Room json:notebook:{file_id} deleted" in self.log()[log_from:]

    def wrote(self, path: str, log_from: int) -> bool:
        """Whether a save began writing ``path`` since log offset ``log_from`` (the line comes
        just before the write, which is done before the save is answered)."""
        return f"Saving file: {path}\n" in self.log()[log_from:]


class OurServer(ServerProcess):
    """This extension's server, from the running interpreter."""

    def __init__(self, root: Path, state: Path) -> None:
        config = {
            "CocalcSync": {"document_cleanup_delay": CLEANUP_DELAY},
            # nothing here runs code: a pooled kernel booting would only take CPU
            "KernelPool": {"size": 0},
            # the package's own records in the server log (the unload test reads "closing")
            "ServerApp": {
                "logging_config": {
                    "loggers": {"jupyter_cocalc_sync": {"level": "INFO", "handlers": ["console"]}}
                }
            },
        }
        super().__init__(root, state, config=config, token="ours-token")

    def write_config(self) -> None:
        # only this extension and the file ids: JupyterLab, notebook, LSP… only slow the start
        extensions = dict.fromkeys(configured_extensions(self.python, self.env()), False)
        extensions.update({"jupyter_cocalc_sync": True, "jupyter_server_fileid": True})
        self.config["ServerApp"]["jpserver_extensions"] = extensions
        super().write_config()

    def unloaded(self, path: str, log_from: int) -> bool:
        """Whether the document of ``path`` was closed since log offset ``log_from``."""
        return f"closing {path}: no clients" in self.log()[log_from:]


#: log lines that say something went wrong in the server
_PROBLEM = re.compile(r"^\[E |Traceback \(most recent call last\)", re.MULTILINE)


def problems(log: str) -> list[str]:
    """The ERROR records and tracebacks in a slice of a server log."""
    lines = log.splitlines()
    found = []
    for i, line in enumerate(lines):
        # jupyter_server's contents manager checks what it saves: a client that writes
        # metadata nbformat forbids gets that line on stock's save too (the same file)
        if _PROBLEM.search(line) and "Notebook JSON is invalid" not in line:
            found.append("\n".join(lines[i : i + 12]))
    return found


def log_size(server: ServerProcess) -> int:
    """Where the server's log ends now (an offset into ``server.log()``)."""
    return len(server.log()) if server.log_path.exists() else 0
