"""The extension's configuration, checked without starting a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from traitlets.config import Config

#: the configuration the package installs into jupyter_server_config.d
CONFIG_FILE = (
    Path(__file__).parents[2] / "jupyter-config/jupyter_server_config.d/jupyter_cocalc_sync.json"
)


def test_config_file_enables_extension_and_pool_manager():
    data = json.loads(CONFIG_FILE.read_text())
    # the file-id extension too: every notebook route needs its manager, and its own enabling
    # file may not be on the config path (e.g. a venv over the system's site-packages)
    assert data["ServerApp"]["jpserver_extensions"] == {
        "jupyter_cocalc_sync": True,
        "jupyter_server_fileid": True,
        "jupyter_server_ydoc": False,
    }
    assert data["ServerApp"]["kernel_manager_class"].endswith("PoolingKernelManager")


@pytest.mark.parametrize("name", ["max_output_length", "max_output_messages"])
def test_invalid_limits_are_refused_with_a_clear_error(name):
    from jupyter_cocalc_sync.app import CocalcSync

    with pytest.raises(Exception, match=name):
        CocalcSync(config=Config({"CocalcSync": {name: 0}}))


def test_the_interval_must_be_positive():
    from jupyter_cocalc_sync.app import CocalcSync
    from jupyter_cocalc_sync.execution.activity_clock import ActivityClock

    with pytest.raises(ValueError, match="activity_interval must be > 0"):
        CocalcSync(activity_interval=0)
    with pytest.raises(ValueError, match="must be > 0"):
        ActivityClock({}, 0)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("kernel_usage_interval", 0),
        ("kernel_usage_idle_interval", 20),
        ("kernel_usage_idle_interval", -1),
    ],
)
def test_sampling_intervals_out_of_range_are_refused_with_the_settings_name(setting, value):
    from jupyter_cocalc_sync.app import CocalcSync

    with pytest.raises(ValueError, match=f"{setting} must be more than 0"):
        CocalcSync(**{setting: value})


def test_the_kernel_classes_keep_the_paths_configurations_name():
    """Configurations written before ``pool/`` name ``kernels.manager`` and
    ``kernels.websocket``; the shipped one names ``pool/``; all of them load the same classes."""
    from traitlets.utils.importstring import import_item

    from jupyter_cocalc_sync.pool.manager import PoolingKernelManager
    from jupyter_cocalc_sync.pool.websocket import KernelChannelsConnection

    shipped = json.loads(CONFIG_FILE.read_text())["ServerApp"]
    for name, cls in (
        ("kernel_manager_class", PoolingKernelManager),
        ("kernel_websocket_connection_class", KernelChannelsConnection),
    ):
        assert import_item(shipped[name]) is cls
    old = "jupyter_cocalc_sync.kernels.manager.PoolingKernelManager"
    assert import_item(old) is PoolingKernelManager
    old = "jupyter_cocalc_sync.kernels.websocket.KernelChannelsConnection"
    assert import_item(old) is KernelChannelsConnection


def test_the_store_url_comes_from_the_environment_unless_configured(monkeypatch):
    from jupyter_cocalc_sync.app import CocalcSync

    monkeypatch.delenv("COCALC_SYNC_STORE_URL", raising=False)
    assert CocalcSync().store_url == ""  # SQLite
    monkeypatch.setenv("COCALC_SYNC_STORE_URL", "postgresql://alice@db/cocalc")
    assert CocalcSync().store_url == "postgresql://alice@db/cocalc"
    configured = Config({"CocalcSync": {"store_url": "postgresql://bob@db/cocalc"}})
    assert CocalcSync(config=configured).store_url == "postgresql://bob@db/cocalc"
