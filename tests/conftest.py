"""Shared fixtures: an isolated Jupyter environment and a server with this extension."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from traitlets.config import Config

pytest_plugins = ["pytest_jupyter.jupyter_server"]

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True)
def isolated_jupyter_env(tmp_path_factory, monkeypatch):
    """Keep every test's Jupyter and IPython state out of the home directory."""
    base = tmp_path_factory.mktemp("jupyter-env")
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        path = base / sub
        path.mkdir()
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    yield


@pytest.fixture
def cocalc_config() -> dict:
    """Per-test overrides of ``c.CocalcSync`` (tests may mutate this dict)."""
    return {"autosave_delay": 0.2, "file_poll_interval": 0.2, "document_cleanup_delay": 5}


@pytest.fixture
def jp_server_config(tmp_path, cocalc_config):
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {
                    "jupyter_cocalc_sync": True,
                    "jupyter_server_fileid": True,
                },
                "kernel_manager_class": (
                    "jupyter_cocalc_sync.kernels.manager.PoolingKernelManager"
                ),
                "allow_root": True,
            },
            "CocalcSync": {"store_path": str(tmp_path / "cocalc.db"), **cocalc_config},
            "BaseFileIdManager": {"db_path": str(tmp_path / "file_id_manager.db")},
        }
    )


@pytest.fixture
def server(jp_serverapp, http_server, jp_http_port, jp_base_url, jp_asyncio_loop):
    """The in-process server (pytest-jupyter), with an authenticated client."""
    from helpers import Server

    srv = Server(
        f"http://127.0.0.1:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token
    )
    yield srv
    jp_asyncio_loop.run_until_complete(srv.aclose())


@pytest.fixture
def root_dir(jp_root_dir) -> Path:
    return Path(jp_root_dir)


@pytest.fixture
def corpus_dir() -> Path:
    return CORPUS


def pytest_report_header(config):
    state = "present" if CORPUS.is_dir() else "absent"
    return f"shared corpus: {CORPUS} ({state}); cpu={os.cpu_count()}"
