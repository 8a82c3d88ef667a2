"""The pool's settings and keys (``KernelPool``, ``PoolKey``), without starting a kernel."""

from __future__ import annotations

import os

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jupyter_cocalc_sync.pool.kernel_pool import KernelPool, PoolKey
from jupyter_cocalc_sync.pool.manager import PoolingKernelManager


@pytest.mark.parametrize(
    ("setting", "bad"),
    [
        ("size", 11),
        ("size", -1),
        ("max_size", 51),
        ("max_size", -1),
        ("max_memory_mb", -1),
        ("demand_window_s", float("nan")),
        ("timeout_s", -1),
        ("launch_delay_ms", -5),
    ],
)
def test_invalid_settings_are_refused_naming_the_setting(setting, bad):
    with pytest.raises(TraitError, match=f"KernelPool.{setting}"):
        PoolingKernelManager(config=Config({"KernelPool": {setting: bad}}))


@pytest.mark.parametrize(
    ("var", "setting"),
    [
        ("COCALC_JUPYTER_POOL_SIZE", "size"),
        ("COCALC_JUPYTER_POOL_TIMEOUT_S", "timeout_s"),
        ("COCALC_JUPYTER_POOL_LAUNCH_DELAY_MS", "launch_delay_ms"),
        ("COCALC_JUPYTER_POOL_MAX_SIZE", "max_size"),
        ("COCALC_JUPYTER_POOL_MAX_MEMORY_MB", "max_memory_mb"),
        ("COCALC_JUPYTER_POOL_DEMAND_WINDOW_S", "demand_window_s"),
    ],
)
def test_invalid_environment_variables_are_refused(monkeypatch, var, setting):
    monkeypatch.setenv(var, "lots")
    with pytest.raises(ValueError, match=f"{var}.*KernelPool.{setting}"):
        PoolingKernelManager()
    monkeypatch.setenv(var, "-3")
    with pytest.raises(TraitError, match=f"KernelPool.{setting} must be .*{var}"):
        PoolingKernelManager()


def test_settings_default_to_the_environment(monkeypatch):
    monkeypatch.setenv("COCALC_JUPYTER_POOL_SIZE", "3")
    monkeypatch.setenv("COCALC_JUPYTER_POOL_TIMEOUT_S", "60")
    monkeypatch.setenv("COCALC_JUPYTER_POOL_LAUNCH_DELAY_MS", "100")
    pool = KernelPool()
    assert (pool.size, pool.timeout_s, pool.launch_delay_ms) == (3, 60, 100)
    assert KernelPool(config=Config({"KernelPool": {"size": 0}})).size == 0


def test_pool_key_ignores_per_notebook_launch_options():
    base = PoolKey.for_launch("python3", {"kernel_name": "python3"})
    session = {**os.environ, "JPY_SESSION_NAME": "/x/nb.ipynb"}
    assert PoolKey.for_launch("python3", {"cwd": "/x", "env": session}) == base
    other = PoolKey.for_launch("python3", {"env": {**session, "EXTRA": "1"}})
    assert other != base
    assert "EXTRA" in other.label and "1" not in other.label.split("#")[0]
    assert other.launch_kwargs("/root")["env"]["EXTRA"] == "1"
    assert "JPY_SESSION_NAME" not in other.launch_kwargs("/root")["env"]
