"""The kernel pool's settings (``c.KernelPool.*``, environment defaults) and its pool key.

A pool key says which kernels are interchangeable: the kernel name and the launch options a
notebook cannot change. Pooled kernels are started without what is specific to one notebook
(working directory, ``JPY_SESSION_NAME``); claiming sets that.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bunch, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

#: environment variables giving the defaults of the pool's settings
ENV_SIZE = "COCALC_JUPYTER_POOL_SIZE"
ENV_TIMEOUT_S = "COCALC_JUPYTER_POOL_TIMEOUT_S"
ENV_LAUNCH_DELAY_MS = "COCALC_JUPYTER_POOL_LAUNCH_DELAY_MS"
ENV_MAX_SIZE = "COCALC_JUPYTER_POOL_MAX_SIZE"
ENV_MAX_MEMORY_MB = "COCALC_JUPYTER_POOL_MAX_MEMORY_MB"
ENV_DEMAND_WINDOW_S = "COCALC_JUPYTER_POOL_DEMAND_WINDOW_S"

MAX_SIZE = 10
#: the most kernels per pool key that demand may grow the pool to
MAX_GROWTH = 50

#: environment variables that name one notebook: not part of the pool key, set when claiming
PER_NOTEBOOK_ENV = frozenset({"JPY_SESSION_NAME"})
#: launch options that are specific to one start: not part of the pool key
PER_START_OPTIONS = frozenset({"cwd", "env", "kernel_id", "kernel_name", "path"})


def _check_setting(trait: str, value: float) -> float:
    """``value`` if it is valid for ``KernelPool.<trait>``, else a TraitError naming it."""
    if trait == "size":
        if not 0 <= value <= MAX_SIZE:
            raise TraitError(f"KernelPool.size must be between 0 and {MAX_SIZE}, got {value}")
    elif trait == "max_size":
        if not 0 <= value <= MAX_GROWTH:
            raise TraitError(f"KernelPool.max_size must be between 0 and {MAX_GROWTH}, got {value}")
    elif not (math.isfinite(value) and value >= 0):
        raise TraitError(f"KernelPool.{trait} must be a number >= 0, got {value}")
    return value


def _env_default(var: str, trait: str, default_value: float, *, integer: bool) -> float:
    """The value of ``var`` in the environment, or ``default_value``; a clear error if invalid.

    (traitlets does not validate dynamic defaults, hence the explicit check.)
    """
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default_value
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ValueError(
            f"environment variable {var}={raw!r} is not {kind} (it sets KernelPool.{trait})"
        ) from None
    try:
        return _check_setting(trait, value)
    except TraitError as e:
        raise TraitError(f"{e} (from environment variable {var})") from None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


@dataclass(frozen=True)
class PoolKey:
    """Which kernels are interchangeable: kernel name + launch options a notebook can't change.

    ``env`` holds the differences from the server's environment (variables set to another
    value, variables removed), without the per-notebook ones: sessions pass the whole server
    environment plus ``JPY_SESSION_NAME``, which therefore matches a kernel started with none.
    """

    kernel_name: str
    options: str = "{}"
    env: str = "{}"
    #: the launch options themselves (``options`` is their canonical form, for comparing)
    raw_options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def for_launch(cls, kernel_name: str, launch_kwargs: dict[str, Any]) -> PoolKey:
        options = {k: v for k, v in launch_kwargs.items() if k not in PER_START_OPTIONS}
        env = launch_kwargs.get("env")
        overrides: dict[str, Any] = {}
        if env is not None:
            changed = {
                k: v for k, v in env.items() if k not in PER_NOTEBOOK_ENV and os.environ.get(k) != v
            }
            removed = sorted(k for k in os.environ if k not in env and k not in PER_NOTEBOOK_ENV)
            if changed:
                overrides["set"] = changed
            if removed:
                overrides["unset"] = removed
        return cls(kernel_name, _canonical(options), _canonical(overrides), options)

    def launch_kwargs(self, cwd: str) -> dict[str, Any]:
        """What to pass to ``KernelManager.start_kernel`` to start a kernel of this key."""
        kwargs: dict[str, Any] = {**self.raw_options, "cwd": cwd}
        overrides = json.loads(self.env)
        if overrides:
            unset = set(overrides.get("unset", ())) | PER_NOTEBOOK_ENV
            env = {k: v for k, v in os.environ.items() if k not in unset}
            env.update(overrides.get("set", {}))
            kwargs["env"] = env
        return kwargs

    @property
    def label(self) -> str:
        """A readable, unique name for status output (option and variable names, no values)."""
        if self.options == "{}" and self.env == "{}":
            return self.kernel_name
        names = sorted(json.loads(self.options))
        overrides = json.loads(self.env)
        names += [f"env:{k}" for k in sorted(overrides.get("set", {}))]
        names += [f"env:-{k}" for k in overrides.get("unset", [])]
        digest = hashlib.sha1((self.options + self.env).encode()).hexdigest()[:8]
        return f"{self.kernel_name} [{', '.join(names)}] #{digest}"


class PoolSettings(LoggingConfigurable):
    """The settings of ``KernelPool`` (configured as ``c.KernelPool.*``)."""

    size = Int(
        config=True,
        help=f"""Kernels kept ready per pool key (kernel name + launch options) when nobody has
        opened notebooks lately, 0 to {MAX_SIZE}; demand grows the pool beyond it (see
        max_size). 0 disables the pool. Default: ${ENV_SIZE}, else 1.""",
    ).tag(env=ENV_SIZE)
    max_size = Int(
        config=True,
        help=f"""The most kernels the pool keeps ready per pool key when demand grows it, 0 to
        {MAX_GROWTH} (below size: size). The pool keeps size ready kernels beyond the most
        notebooks opened within 30 s of each other in the last demand_window_s seconds, so a
        class opening notebooks together finds a kernel for each. Default: ${ENV_MAX_SIZE},
        else 10.""",
    ).tag(env=ENV_MAX_SIZE)
    max_memory_mb = Float(
        config=True,
        help=f"""The most memory (resident, in MiB) all pooled kernels together may hold: the
        pool grows beyond size only within it, and stops its extra kernels when they exceed it
        (an idle ipykernel holds 50-80 MiB). The first size kernels of each pool key are kept
        regardless. Default: ${ENV_MAX_MEMORY_MB}, else 1024.""",
    ).tag(env=ENV_MAX_MEMORY_MB)
    demand_window_s = Float(
        config=True,
        help=f"""Seconds a burst of notebook opens keeps the pool grown: once this long has
        passed without one, the pool shrinks back to size. Default: ${ENV_DEMAND_WINDOW_S},
        else 600.""",
    ).tag(env=ENV_DEMAND_WINDOW_S)
    timeout_s = Float(
        config=True,
        help=f"""Seconds a pooled kernel may wait unclaimed before it is replaced by a fresh one
        (so it sees newly installed packages); keys other than the default kernel's that are not
        asked for in that time are dropped. 0 never recycles. Default: ${ENV_TIMEOUT_S}, else
        3600.""",
    ).tag(env=ENV_TIMEOUT_S)
    launch_delay_ms = Float(
        config=True,
        help=f"""Milliseconds to wait after a kernel start before refilling the pool. Refills
        start one kernel at a time, never while a kernel start is under way, and boot at low
        CPU priority (restored when the kernel is claimed), so they take little from the
        user's own start. Default: ${ENV_LAUNCH_DELAY_MS}, else 1000.""",
    ).tag(env=ENV_LAUNCH_DELAY_MS)
    exclude = List(
        Unicode(),
        config=True,
        help="""Kernel names that are never pooled (names containing 'julia' never are).""",
    )

    @default("size")
    def _size_default(self) -> int:
        return int(_env_default(ENV_SIZE, "size", 1, integer=True))

    @default("max_size")
    def _max_size_default(self) -> int:
        return int(_env_default(ENV_MAX_SIZE, "max_size", 10, integer=True))

    @default("max_memory_mb")
    def _max_memory_default(self) -> float:
        return _env_default(ENV_MAX_MEMORY_MB, "max_memory_mb", 1024.0, integer=False)

    @default("demand_window_s")
    def _demand_window_default(self) -> float:
        return _env_default(ENV_DEMAND_WINDOW_S, "demand_window_s", 600.0, integer=False)

    @default("timeout_s")
    def _timeout_default(self) -> float:
        return _env_default(ENV_TIMEOUT_S, "timeout_s", 3600.0, integer=False)

    @default("launch_delay_ms")
    def _launch_delay_default(self) -> float:
        return _env_default(ENV_LAUNCH_DELAY_MS, "launch_delay_ms", 1000.0, integer=False)

    @validate(
        "size", "max_size", "max_memory_mb", "demand_window_s", "timeout_s", "launch_delay_ms"
    )
    def _validate_setting(self, proposal: Bunch) -> float:
        return _check_setting(proposal["trait"].name, proposal["value"])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Read every setting now: a bad value or environment variable stops the server at
        # startup with a message naming it, not at the first kernel start.
        _ = (self.size, self.max_size, self.max_memory_mb, self.demand_window_s)
        _ = (self.timeout_s, self.launch_delay_ms, self.exclude)
