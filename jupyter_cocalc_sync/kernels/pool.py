"""The kernel pool: kernels started ahead of time, so opening a notebook gets one at once.

A cold ipykernel needs ~0.5 s of CPU before it answers (imports, IPython shell); a pooled one
was started earlier, answered ``kernel_info`` and ran one silent warm-up cell, so handing it
out costs one silent ``execute_request`` that re-points it at the notebook (working directory,
``JPY_SESSION_NAME``/``__session__``) and a few bookkeeping updates.

Pooled kernels are started by ``PoolingKernelManager`` (the pool's parent) with the same
launch options a stock start would use, minus what is specific to one notebook (working
directory, ``JPY_SESSION_NAME``): that is the pool key. Until claimed they live only here,
not in the manager's kernel map, so ``/api/kernels``, ``/api/status``, the culler and the
"shut down when idle" timer never see them.

Design choices worth knowing:

* Refills wait ``launch_delay_ms`` after a claim or a miss: a kernel booting next to the
  user's own start on a small machine halves that start's speed.
* A start that finds no ready kernel but a pooled one still booting takes that one over
  (it started earlier, so it is ready sooner than a fresh start); otherwise it falls back to a
  normal start. Nobody waits in a queue behind another user's claim.
* Only python kernelspecs that run ipykernel are pooled: re-pointing is Python code run in
  the kernel. Julia kernels (slow to start, but their working directory cannot be changed the
  same way) and names on ``exclude`` are never pooled.
* A pooled kernel that died, or does not answer the re-pointing request, is discarded and
  replaced; it is never handed out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import queue
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from traitlets import Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

if TYPE_CHECKING:
    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.manager import KernelManager

    from .manager import PoolingKernelManager

#: environment variables giving the defaults of the pool's settings
ENV_SIZE = "COCALC_JUPYTER_POOL_SIZE"
ENV_TIMEOUT_S = "COCALC_JUPYTER_POOL_TIMEOUT_S"
ENV_LAUNCH_DELAY_MS = "COCALC_JUPYTER_POOL_LAUNCH_DELAY_MS"

MAX_SIZE = 10

#: environment variables that name one notebook: not part of the pool key, set when claiming
PER_NOTEBOOK_ENV = frozenset({"JPY_SESSION_NAME"})
#: launch options that are specific to one start: not part of the pool key
PER_START_OPTIONS = frozenset({"cwd", "env", "kernel_id", "kernel_name", "path"})

#: how long a pooled kernel may take to answer its first kernel_info_request
WARM_UP_TIMEOUT_S = 60.0
#: how long a claimed kernel may take to run the re-pointing code before it is discarded
REPOINT_TIMEOUT_S = 10.0
#: the longest wait between two health checks of the pooled kernels
MAX_CHECK_INTERVAL_S = 5.0
#: back-off after failed pooled starts: first retry after this many seconds, doubling
RETRY_AFTER_FAILURE_S = 30.0


class PooledKernelError(RuntimeError):
    """A pooled kernel died or did not answer; it is discarded and replaced."""


def _check_setting(trait: str, value: float) -> float:
    """``value`` if it is valid for ``KernelPool.<trait>``, else a TraitError naming it."""
    if trait == "size":
        if not 0 <= value <= MAX_SIZE:
            raise TraitError(f"KernelPool.size must be between 0 and {MAX_SIZE}, got {value}")
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


@dataclass(eq=False)
class PooledKernel:
    """A started, warmed-up kernel waiting to be claimed."""

    kernel_id: str
    km: KernelManager
    client: AsyncKernelClient
    key: PoolKey
    #: the manager's ``autorestart`` setting, off while pooled (a dead one is replaced)
    autorestart: bool = True
    started_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _Starting:
    """A pooled kernel being started; a claim may take it over (``claimed``)."""

    key: PoolKey
    task: asyncio.Task[PooledKernel] | None = None
    km: KernelManager | None = None
    claimed: bool = False


@dataclass
class _KeyState:
    ready: deque[PooledKernel] = field(default_factory=deque)
    starting: list[_Starting] = field(default_factory=list)
    last_wanted: float = field(default_factory=time.monotonic)
    failures: int = 0
    filler: asyncio.Task[None] | None = None


def repoint_code(cwd: str, session_name: str | None, *, set_session: bool) -> str:
    """Python that re-points a pooled ipykernel at a notebook, leaving no names behind.

    ipykernel reads ``JPY_SESSION_NAME`` (→ ``__session__``) and the working directory only
    when it starts; ``sys.path`` holds ``''``, so imports follow the new directory.
    """
    session_lines = ""
    if set_session:
        session_lines = (
            "    if session is None:\n"
            "        os.environ.pop('JPY_SESSION_NAME', None)\n"
            "        ns.pop('__session__', None)\n"
            "    else:\n"
            "        os.environ['JPY_SESSION_NAME'] = session\n"
            "        ns['__session__'] = session\n"
        )
    return (
        "def _cocalc_repoint(cwd, session):\n"
        "    import os\n"
        "    os.chdir(cwd)\n"
        "    ns = get_ipython().user_ns\n"
        "    if isinstance(ns.get('_dh'), list):\n"
        "        ns['_dh'][:] = [cwd]\n"
        f"{session_lines}"
        f"_cocalc_repoint({cwd!r}, {session_name!r})\n"
        "del _cocalc_repoint\n"
    )


class KernelPool(LoggingConfigurable):
    """Pre-started kernels for ``PoolingKernelManager`` (configure as ``c.KernelPool.*``)."""

    size = Int(
        config=True,
        help=f"""Kernels kept ready per pool key (kernel name + launch options), 0 to {MAX_SIZE}.
        0 disables the pool. Default: ${ENV_SIZE}, else 1.""",
    )
    timeout_s = Float(
        config=True,
        help=f"""Seconds a pooled kernel may wait unclaimed before it is replaced by a fresh one
        (so it sees newly installed packages); keys other than the default kernel's that are not
        asked for in that time are dropped. 0 never recycles. Default: ${ENV_TIMEOUT_S}, else
        3600.""",
    )
    launch_delay_ms = Float(
        config=True,
        help=f"""Milliseconds to wait after a kernel start before refilling the pool, so the
        refill does not compete for CPU with the user's own start. Default:
        ${ENV_LAUNCH_DELAY_MS}, else 7500.""",
    )
    exclude = List(
        Unicode(),
        config=True,
        help="""Kernel names that are never pooled (names containing 'julia' never are).""",
    )

    @default("size")
    def _size_default(self) -> int:
        return int(_env_default(ENV_SIZE, "size", 1, integer=True))

    @default("timeout_s")
    def _timeout_default(self) -> float:
        return _env_default(ENV_TIMEOUT_S, "timeout_s", 3600.0, integer=False)

    @default("launch_delay_ms")
    def _launch_delay_default(self) -> float:
        return _env_default(ENV_LAUNCH_DELAY_MS, "launch_delay_ms", 7500.0, integer=False)

    @validate("size", "timeout_s", "launch_delay_ms")
    def _validate_setting(self, proposal: Any) -> float:
        return _check_setting(proposal["trait"].name, proposal["value"])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Read every setting now: a bad value or environment variable stops the server at
        # startup with a message naming it, not at the first kernel start.
        _ = (self.size, self.timeout_s, self.launch_delay_ms, self.exclude)
        self._keys: dict[PoolKey, _KeyState] = {}
        self._default_key: PoolKey | None = None
        self._not_pooled: dict[str, str] = {}
        self._counters = dict.fromkeys(
            ("claimed", "taken_while_starting", "missed", "replaced", "recycled", "failed"), 0
        )
        self._started = False
        self._closed = False
        self._maintenance: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._claiming: set[PooledKernel] = set()
        self._stopped: weakref.WeakSet[KernelManager] = weakref.WeakSet()
        self._changed = asyncio.Event()

    @property
    def manager(self) -> PoolingKernelManager:
        return self.parent  # type: ignore[return-value]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, initial_delay: float = 0.0) -> bool:
        """Start filling the pool for the default kernel (idempotent, returns at once).

        Needs a running event loop; returns False (and stays unstarted) without one, so a
        later call from the loop can start it.
        """
        if self._started or self._closed:
            return self._started
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._started = True
        if self.size == 0:
            self.log.info("Kernel pool disabled (KernelPool.size = 0)")
            return True
        self._maintenance = asyncio.create_task(self._maintain())
        self._spawn_background(self._start_default(initial_delay))
        return True

    async def _start_default(self, delay: float) -> None:
        name = self.manager.default_kernel_name
        reason = await self._not_poolable_reason(name)
        excluded = sorted({*self.exclude, "*julia*"})
        if reason is not None:
            self.log.info(
                "Kernel pool: size %d per key; default kernel %r is not pooled (%s); "
                "never pooled: %s",
                self.size,
                name,
                reason,
                ", ".join(excluded),
            )
            return
        key = PoolKey.for_launch(name, self.manager.pool_launch_kwargs(name))
        self._default_key = key
        self._want(key, delay)
        self.log.info(
            "Kernel pool: %d ready kernel(s) per key, filling %r; refill delay %g ms, "
            "recycled after %g s; never pooled: %s",
            self.size,
            key.label,
            self.launch_delay_ms,
            self.timeout_s,
            ", ".join(excluded),
        )

    async def close(self) -> None:
        """Stop every pooled kernel (ready or starting) and stop refilling; for server exit."""
        self._closed = True
        tasks: list[asyncio.Task[Any]] = []
        if self._maintenance is not None:
            tasks.append(self._maintenance)
        # Kernels being re-pointed right now are stopped too: their claim then falls back to
        # a normal start, as any start racing the server's shutdown does.
        entries = list(self._claiming)
        for state in self._keys.values():
            if state.filler is not None:
                tasks.append(state.filler)
            tasks.extend(slot.task for slot in state.starting if slot.task is not None)
            entries.extend(state.ready)
            state.ready.clear()
        for task in tasks:
            task.cancel()
        for entry in entries:
            entry.client.stop_channels()
        # A cancelled start stops its own kernel; background tasks are discards in progress.
        await asyncio.gather(*tasks, *(self._stop(e.km) for e in entries), return_exceptions=True)
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self._keys.clear()
        self._notify()

    # -- claiming ----------------------------------------------------------------------------

    async def claim(self, launch_kwargs: dict[str, Any]) -> tuple[str, KernelManager] | None:
        """A ready kernel re-pointed for this start, or None (then start one normally).

        ``launch_kwargs`` are what jupyter_server would pass to the kernel manager:
        ``kernel_name``, ``cwd`` (the notebook's folder), ``env`` and other launch options.
        """
        if self._closed or self.size == 0:
            return None
        name = launch_kwargs.get("kernel_name") or self.manager.default_kernel_name
        reason = await self._not_poolable_reason(name)
        if reason is not None:
            return None
        key = PoolKey.for_launch(name, launch_kwargs)
        state = self._keys.get(key)
        t0 = time.perf_counter()
        try:
            while state is not None and not self._closed:
                entry = await self._next_candidate(state)
                if entry is None:
                    break
                self._claiming.add(entry)
                try:
                    await self._repoint(entry, launch_kwargs)
                except Exception as e:  # whatever went wrong, the start must not fail
                    self.log.warning("Pooled kernel %s discarded: %r", entry.kernel_id, e)
                    self._counters["replaced"] += 1
                    self._discard(entry)
                    continue
                finally:
                    self._claiming.discard(entry)
                self._counters["claimed"] += 1
                self.log.info(
                    "Kernel %s taken from the pool (%s) in %.0f ms",
                    entry.kernel_id,
                    key.label,
                    (time.perf_counter() - t0) * 1000,
                )
                return entry.kernel_id, entry.km
            self._counters["missed"] += 1
            return None
        finally:
            self._want(key, self.launch_delay_ms / 1000)
            self._notify()

    async def _next_candidate(self, state: _KeyState) -> PooledKernel | None:
        """The oldest ready kernel, else one still starting (taken over), else None."""
        if state.ready:
            return state.ready.popleft()
        slot = next((s for s in state.starting if not s.claimed and s.task is not None), None)
        if slot is None or slot.task is None:
            return None
        slot.claimed = True
        try:
            entry = await asyncio.shield(slot.task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or not current.cancelling():
                return None  # the pool is closing
            # The start request itself went away: give the kernel back to the pool.
            slot.claimed = False
            task = slot.task
            if task.done() and not task.cancelled() and task.exception() is None:
                state.ready.append(task.result())
            raise
        except Exception:
            return None  # its start failed (logged by the filler)
        self._counters["taken_while_starting"] += 1
        return entry

    async def _repoint(self, entry: PooledKernel, launch_kwargs: dict[str, Any]) -> None:
        """Make the kernel look as if it had been started for this notebook."""
        km = entry.km
        if not await km.is_alive():
            raise PooledKernelError("its process is gone")
        cwd = launch_kwargs.get("cwd") or os.getcwd()
        env = launch_kwargs.get("env")
        session_name = env.get("JPY_SESSION_NAME") if env is not None else None
        code = repoint_code(str(cwd), session_name, set_session=env is not None)
        reply = await self._request(
            entry, "execute", REPOINT_TIMEOUT_S, code=code, silent=True, store_history=False
        )
        if reply["content"].get("status") != "ok":
            raise PooledKernelError(f"re-pointing failed: {reply['content'].get('evalue')}")
        entry.client.stop_channels()
        # What a restart reuses, and what /api/resolvePath resolves against.
        launch_args = km._launch_args if km._launch_args is not None else {}
        if "cwd" in launch_kwargs:
            launch_args["cwd"] = cwd
        else:
            launch_args.pop("cwd", None)
        if env is not None:
            launch_args["env"] = dict(env)
        km._launch_args = launch_args
        if km.provisioner is not None and hasattr(km.provisioner, "cwd"):
            km.provisioner.cwd = cwd
        km.autorestart = entry.autorestart
        km.start_restarter()

    # -- filling -----------------------------------------------------------------------------

    def _want(self, key: PoolKey, delay: float, *, touch: bool = True) -> None:
        """Make sure a refill of ``key`` is under way or planned (``touch``: it was asked for)."""
        if self._closed or self.size == 0:
            return
        state = self._keys.setdefault(key, _KeyState())
        if touch:
            state.last_wanted = time.monotonic()
        if state.filler is None or state.filler.done():
            if state.failures:
                delay = max(delay, RETRY_AFTER_FAILURE_S * 2 ** (state.failures - 1))
            state.filler = asyncio.create_task(self._fill(key, state, delay))

    def _missing(self, state: _KeyState) -> int:
        unclaimed = sum(1 for s in state.starting if not s.claimed)
        return self.size - len(state.ready) - unclaimed

    async def _fill(self, key: PoolKey, state: _KeyState, delay: float) -> None:
        """Start kernels for ``key`` one at a time until ``size`` are ready or starting."""
        if delay > 0:
            await asyncio.sleep(delay)
        while not self._closed and self._missing(state) > 0:
            slot = _Starting(key)
            slot.task = asyncio.create_task(self._start_kernel(slot, state))
            state.starting.append(slot)
            self._notify()
            await asyncio.wait({slot.task})
            if slot.task.cancelled():
                return
            if slot.task.exception() is not None:
                state.failures += 1
                self._counters["failed"] += 1
                retry = RETRY_AFTER_FAILURE_S * 2 ** (state.failures - 1)
                self.log.warning(
                    "Kernel pool: starting a %s kernel failed (%s); retrying in %g s",
                    key.label,
                    slot.task.exception(),
                    retry,
                )
                return
            state.failures = 0

    async def _start_kernel(self, slot: _Starting, state: _KeyState) -> PooledKernel:
        """Start one pooled kernel and warm it up; it goes to ``ready`` unless claimed."""
        manager = self.manager
        kwargs = slot.key.launch_kwargs(manager.root_dir)
        km, _, kernel_id = manager.pre_start_kernel(slot.key.kernel_name, kwargs)
        slot.km = km
        autorestart = km.autorestart
        km.autorestart = False  # a pooled kernel that dies is replaced, not restarted
        kwargs["kernel_id"] = kernel_id
        client = None
        try:
            await km.start_kernel(**kwargs)
            client = km.client(context=km.context)
            client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
            entry = PooledKernel(kernel_id, km, client, slot.key, autorestart)
            await self._warm_up(entry)
        except BaseException:
            if client is not None:
                client.stop_channels()
            await asyncio.shield(self._stop(km))
            if slot in state.starting:
                state.starting.remove(slot)
            self._notify()
            raise
        if slot in state.starting:
            state.starting.remove(slot)
        if not slot.claimed:
            entry.started_at = time.monotonic()
            state.ready.append(entry)
            self.log.debug("Kernel pool: %s ready (%s)", kernel_id, slot.key.label)
        self._notify()
        return entry

    async def _warm_up(self, entry: PooledKernel) -> None:
        """Wait for the kernel to answer, then run one silent cell.

        The first execution in a fresh IPython pays for lazy imports and compiling its
        machinery (~2 ms, measured; an empty cell skips it); doing it here keeps it out of the
        claim.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WARM_UP_TIMEOUT_S
        while True:
            try:
                await self._request(entry, "kernel_info", 1.0)
                break
            except TimeoutError:
                # ipykernel may drop a request sent before its sockets are bound
                if loop.time() > deadline:
                    raise
        await self._request(
            entry, "execute", WARM_UP_TIMEOUT_S, code="pass", silent=True, store_history=False
        )

    async def _request(
        self, entry: PooledKernel, method: str, timeout: float, **content: Any
    ) -> dict[str, Any]:
        """Send a shell request and wait for its reply; raise if the kernel dies meanwhile."""
        client = entry.client
        if method == "execute":
            msg_id = client.execute(allow_stdin=False, **content)
        else:
            msg_id = client.kernel_info()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {method}_reply within {timeout:g} s")
            try:
                reply = await client.get_shell_msg(timeout=min(remaining, 0.25))
            except queue.Empty:
                if not await entry.km.is_alive():
                    raise PooledKernelError("the kernel process died") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    # -- upkeep ------------------------------------------------------------------------------

    def _check_interval(self) -> float:
        if self.timeout_s > 0:
            return max(0.1, min(MAX_CHECK_INTERVAL_S, self.timeout_s / 4))
        return MAX_CHECK_INTERVAL_S

    async def _maintain(self) -> None:
        """Replace dead and expired pooled kernels; forget keys nobody asked for lately."""
        while not self._closed:
            await asyncio.sleep(self._check_interval())
            try:
                await self._check()
            except Exception:
                self.log.exception("Kernel pool: health check failed")

    async def _check(self) -> None:
        now = time.monotonic()
        for key, state in list(self._keys.items()):
            expired_key = (
                key != self._default_key
                and self.timeout_s > 0
                and now - state.last_wanted > self.timeout_s
                and not state.starting
            )
            for entry in list(state.ready):
                if expired_key:
                    reason = None
                elif not await entry.km.is_alive():
                    reason = "replaced"
                    self.log.warning("Pooled kernel %s died; replacing it", entry.kernel_id)
                elif self.timeout_s > 0 and now - entry.started_at > self.timeout_s:
                    reason = "recycled"
                else:
                    continue
                if entry in state.ready:
                    state.ready.remove(entry)
                    self._discard(entry)
                    if reason:
                        self._counters[reason] += 1
            if expired_key:
                if state.filler is not None:
                    state.filler.cancel()
                del self._keys[key]
                self.log.info("Kernel pool: no longer keeping %s kernels", key.label)
            elif self._missing(state) > 0:
                self._want(key, 0.0, touch=False)
        self._notify()

    def _discard(self, entry: PooledKernel) -> None:
        entry.client.stop_channels()
        self._spawn_background(self._stop(entry.km))

    async def _stop(self, km: KernelManager) -> None:
        """Kill a pooled kernel's process and free its resources (once).

        It holds no user state, so no polite shutdown; and no SIGINT first (what
        ``shutdown_kernel(now=True)`` sends), which prints a KeyboardInterrupt traceback in
        the server's log when the kernel is still importing.
        """
        if km in self._stopped:
            return
        self._stopped.add(km)
        try:
            if km.has_kernel and km.provisioner is not None:
                await km.provisioner.kill()
                await km.provisioner.wait()
            await km.cleanup_resources()
        except Exception as e:
            self.log.warning("Kernel pool: error while stopping a pooled kernel: %s", e)

    def _spawn_background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- poolability -------------------------------------------------------------------------

    async def _not_poolable_reason(self, kernel_name: str) -> str | None:
        """Why kernels of this name are never pooled, or None if they are."""
        if "julia" in kernel_name.lower():
            reason: str | None = "Julia kernels are never pooled"
        elif kernel_name in self.exclude:
            reason = "listed in KernelPool.exclude"
        else:
            reason = await asyncio.to_thread(self._spec_reason, kernel_name)
        if reason is not None and kernel_name not in self._not_pooled:
            self.log.info("Kernel pool: %r kernels are not pooled: %s", kernel_name, reason)
        if reason is not None:
            self._not_pooled[kernel_name] = reason
        return reason

    def _spec_reason(self, kernel_name: str) -> str | None:
        try:
            spec = self.manager.kernel_spec_manager.get_kernel_spec(kernel_name)
        except Exception:
            return "no such kernelspec"
        language = (spec.language or "").lower()
        if language != "python":
            return f"language {spec.language!r} has no re-pointing support"
        if not any("ipykernel" in arg for arg in spec.argv):
            return "not an ipykernel kernel"
        provisioner = (spec.metadata or {}).get("kernel_provisioner", {})
        if provisioner.get("provisioner_name", "local-provisioner") != "local-provisioner":
            return "it uses a custom kernel provisioner"
        if any(var in str(value) for value in spec.env.values() for var in PER_NOTEBOOK_ENV):
            return "its kernelspec env uses per-notebook variables"
        return None

    # -- status ------------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake up ``wait_ready`` callers: the pool's contents changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_ready(self, kernel_name: str | None = None, timeout: float = 60.0) -> None:
        """Wait until the pool holds ``size`` ready kernels for ``kernel_name`` (default key).

        For tests, benchmarks and health checks; raises TimeoutError.
        """

        def full() -> bool:
            return any(
                len(state.ready) >= self.size
                and (kernel_name is None or key.kernel_name == kernel_name)
                and (kernel_name is not None or key == self._default_key)
                for key, state in self._keys.items()
            )

        async with asyncio.timeout(timeout):
            while not full():
                await self._changed.wait()

    def kernel_ids(self) -> list[str]:
        """Ids of the kernels ready in the pool (not visible in the manager until claimed)."""
        return [e.kernel_id for s in self._keys.values() for e in s.ready]

    def kernel_pids(self) -> list[int]:
        """Process ids of pooled kernels, ready or starting (for tests and diagnostics)."""
        kms = [e.km for s in self._keys.values() for e in s.ready]
        kms += [slot.km for s in self._keys.values() for slot in s.starting if slot.km]
        pids = [getattr(km.provisioner, "pid", None) for km in kms]
        return [pid for pid in pids if pid is not None]

    def status(self) -> dict[str, Any]:
        """The pool's settings and per-key counts, JSON-able."""
        return {
            "enabled": self.size > 0 and not self._closed,
            "started": self._started,
            "size": self.size,
            "timeout_s": self.timeout_s,
            "launch_delay_ms": self.launch_delay_ms,
            "exclude": sorted({*self.exclude, "*julia*"}),
            "default": self._default_key.label if self._default_key else None,
            "kernels": {
                key.label: {
                    "kernel_name": key.kernel_name,
                    "ready": len(state.ready),
                    "starting": sum(1 for s in state.starting if not s.claimed),
                }
                for key, state in self._keys.items()
            },
            "not_pooled": dict(self._not_pooled),
            "counters": dict(self._counters),
        }
