"""Filling and recycling the kernel pool: starting kernels ahead of time, keeping them healthy.

Each pool key gets kernels started one at a time until its target (``sizing``: ``size``, grown
by recent demand) are ready or starting. A pooled kernel answers ``kernel_info`` and runs one
silent warm-up cell before it counts as ready; one that dies, or sits unclaimed longer than
``timeout_s``, is replaced; ready kernels above the target (demand passed, or over the memory
budget) are stopped. A kernel booting next to the user's own start on a small machine halves
that start's speed, so refills yield to starts: none begins while a kernel start is under way
or within ``launch_delay_ms`` of its end, and one already booting when a start begins boots on
at low CPU priority (``priority``) until then (or until a start takes it over). Failed starts
back off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import psutil
from jupyter_client.kernelspec import NoSuchKernel

from ..errors import KernelError
from ..errors_seen import count_error
from . import sizing
from .pooled import PooledKernel, warm_up
from .settings import PoolKey, PoolSettings
from .yielding import StartsUnderWay

if TYPE_CHECKING:
    from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

    from .manager import PoolingKernelManager

T = TypeVar("T")

#: the longest wait between two health checks of the pooled kernels
MAX_CHECK_INTERVAL_S = 5.0
#: back-off after failed pooled starts: first retry after this many seconds, doubling
RETRY_AFTER_FAILURE_S = 30.0


#: how starting or re-pointing a pooled kernel fails without a bug of ours: the process did
#: not start or died (OSError, jupyter_client's RuntimeError, PooledKernelError), it did not
#: answer in time (TimeoutError), its kernelspec is gone (NoSuchKernel), a request did not go
#: out (KernelError)
POOL_ERRORS = (OSError, RuntimeError, TimeoutError, NoSuchKernel, KernelError)


@dataclass(eq=False)
class _Starting:
    """A pooled kernel being started; a claim may take it over (``claimed``)."""

    key: PoolKey
    task: asyncio.Task[PooledKernel] | None = None
    km: ServerKernelManager | None = None
    claimed: bool = False
    #: started on an empty pool, for the next open: boots at normal priority
    urgent: bool = False


@dataclass
class KeyState:
    demand: sizing.Demand
    ready: deque[PooledKernel] = field(default_factory=deque)
    starting: list[_Starting] = field(default_factory=list)
    last_wanted: float = field(default_factory=time.monotonic)
    failures: int = 0
    filler: asyncio.Task[None] | None = None


class PoolFilling(PoolSettings):
    """Keeps ``size`` warm kernels per pool key (the filling half of ``KernelPool``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._keys: dict[PoolKey, KeyState] = {}
        self._default_key: PoolKey | None = None
        self._counters = dict.fromkeys(
            (
                "claimed",
                "taken_while_starting",
                "missed",
                "replaced",
                "recycled",
                "failed",
                "repoint_failed",
                "shrunk",
            ),
            0,
        )
        self._closed = False
        self._background: set[asyncio.Task[Any]] = set()  # (results not read)
        self._stopped: weakref.WeakSet[ServerKernelManager] = weakref.WeakSet()
        self._changed = asyncio.Event()
        #: kernel starts under way in the manager (claims and normal starts)
        self.starts = StartsUnderWay(
            lambda: self.launch_delay_ms / 1000, self.booting_pids, self._spawn_background
        )
        #: the largest resident memory measured of a pooled kernel
        self._kernel_bytes = 0

    @property
    def manager(self) -> PoolingKernelManager:
        return self.parent  # type: ignore[return-value]  # the manager made the pool its child

    # -- filling -----------------------------------------------------------------------------

    def _want(self, key: PoolKey, delay: float, *, touch: bool = True) -> None:
        """Make sure a refill of ``key`` is under way or planned (``touch``: it was asked for)."""
        if self._closed or self.size == 0:
            return
        state = self._key_state(key)
        if touch:
            state.last_wanted = time.monotonic()
        if state.filler is None or state.filler.done():
            if state.failures:
                delay = max(delay, RETRY_AFTER_FAILURE_S * 2 ** (state.failures - 1))
            state.filler = asyncio.create_task(self._fill(key, state, delay))

    def _key_state(self, key: PoolKey) -> KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = KeyState(sizing.Demand())
        return state

    def start_under_way(self) -> contextlib.AbstractContextManager[None]:
        """Around a kernel start in the manager: pooled kernels yield the CPU to it, and no
        refill begins, until ``launch_delay_ms`` after it (and any other start) ended."""
        return self.starts.start()

    def target(self, state: KeyState) -> int:
        """How many ready kernels the key aims for now (``sizing``)."""
        return sizing.target_size(
            self.size, self.max_size, state.demand.peak(time.monotonic(), self.demand_window_s)
        )

    def _held(self, state: KeyState) -> int:
        return len(state.ready) + sum(1 for s in state.starting if not s.claimed)

    def _missing(self, state: KeyState) -> int:
        return self.target(state) - self._held(state)

    def _affordable(self, state: KeyState) -> bool:
        """Whether one more kernel for this key fits in the memory budget (``sizing``)."""
        return sizing.affordable(
            size=self.size,
            held=self._held(state),
            pooled_bytes=self.pooled_bytes(),
            kernel_bytes=self.kernel_bytes(),
            budget_bytes=int(self.max_memory_mb * 2**20),
        )

    async def _fill(self, key: PoolKey, state: KeyState, delay: float) -> None:
        """Start kernels for ``key`` one at a time until its target are ready or starting."""
        if delay > 0:
            await asyncio.sleep(delay)
        while not self._closed and self._missing(state) > 0:
            empty = self._held(state) == 0
            await self.starts.until_quiet(empty=empty)
            if self._closed or self._missing(state) <= 0 or not self._affordable(state):
                return
            slot = _Starting(key, urgent=empty and self._held(state) == 0)
            slot.task = asyncio.create_task(self._start_kernel(slot, state))
            state.starting.append(slot)
            self._notify()
            await asyncio.wait({slot.task})
            if slot.task.cancelled():
                return
            error = slot.task.exception()
            if error is not None:
                state.failures += 1
                self._counters["failed"] += 1
                retry = RETRY_AFTER_FAILURE_S * 2 ** (state.failures - 1)
                if not isinstance(error, POOL_ERRORS):  # a bug of ours: the pool retries too
                    count_error(
                        "pool.start", error, f"starting a {key.label} kernel", logger=self.log
                    )
                self.log.warning(
                    "Kernel pool: starting a %s kernel failed (%s); retrying in %g s",
                    key.label,
                    error,
                    retry,
                )
                return
            state.failures = 0

    async def _start_kernel(self, slot: _Starting, state: KeyState) -> PooledKernel:
        """Start one pooled kernel and warm it up; it goes to ``ready`` unless claimed."""
        manager = self.manager
        kwargs = slot.key.launch_kwargs(manager.root_dir)
        km, _, kernel_id = manager.pre_start_kernel(slot.key.kernel_name, kwargs)
        slot.km = km
        autorestart = km.autorestart
        km.autorestart = False  # a pooled kernel that dies is replaced, not restarted
        kwargs["kernel_id"] = kernel_id
        entry = None
        try:
            await km.start_kernel(**kwargs)
            pid = getattr(km.provisioner, "pid", None)
            if pid is not None and not slot.claimed and not slot.urgent and self.starts.yielding():
                self.starts.lower(pid)
            client = km.client(context=km.context)
            client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
            entry = PooledKernel(kernel_id, km, client, slot.key, autorestart)
            await warm_up(entry)
        except BaseException:  # (re-raised: the filler, or a claim, sees it)
            if entry is not None:
                entry.release()
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
            self._measure(entry)
            self.log.debug("Kernel pool: %s ready (%s)", kernel_id, slot.key.label)
        self._notify()
        return entry

    # -- memory ------------------------------------------------------------------------------

    def _measure(self, entry: PooledKernel) -> int:
        """A pooled kernel's resident memory now (0 if its process is gone); remembers the
        largest seen, the estimate for kernels not started yet."""
        pid = getattr(entry.km.provisioner, "pid", None)
        try:
            rss = int(psutil.Process(pid).memory_info().rss) if pid is not None else 0
        except psutil.Error:  # the process is gone: the health check replaces it
            rss = 0
        self._kernel_bytes = max(self._kernel_bytes, rss)
        return rss

    def kernel_bytes(self) -> int:
        """What one more pooled kernel is taken to hold (the largest measured)."""
        return self._kernel_bytes or sizing.DEFAULT_KERNEL_BYTES

    def pooled_bytes(self) -> int:
        """Resident memory of the pooled kernels: measured for the ready ones, estimated for
        those still starting."""
        ready = sum(self._measure(e) for s in self._keys.values() for e in s.ready)
        starting = sum(1 for s in self._keys.values() for slot in s.starting if not slot.claimed)
        return ready + starting * self.kernel_bytes()

    # -- upkeep ------------------------------------------------------------------------------

    def _check_interval(self) -> float:
        intervals = [MAX_CHECK_INTERVAL_S, self.demand_window_s / 4]
        if self.timeout_s > 0:
            intervals.append(self.timeout_s / 4)
        return max(0.1, min(intervals))

    async def _maintain(self) -> None:
        """Replace dead and expired pooled kernels; forget keys nobody asked for lately."""
        while not self._closed:
            await asyncio.sleep(self._check_interval())
            try:
                await self._check()
            except Exception as e:  # a bug of ours: the next check runs all the same
                count_error("pool.check", e, "the kernel pool's health check", logger=self.log)

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
            else:
                self._shrink(key, state)
                if self._missing(state) > 0:
                    self._want(key, 0.0, touch=False)
        self._notify()

    def _shrink(self, key: PoolKey, state: KeyState) -> None:
        """Stop the ready kernels above the key's target or the memory budget, oldest first."""
        surplus = sizing.excess(
            size=self.size,
            target=self.target(state),
            ready=len(state.ready),
            pooled_bytes=self.pooled_bytes(),
            budget_bytes=int(self.max_memory_mb * 2**20),
            kernel_bytes=self.kernel_bytes(),
        )
        for _ in range(surplus):
            self._discard(state.ready.popleft())
            self._counters["shrunk"] += 1
        if surplus:
            self.log.info(
                "Kernel pool: %d %s kernel(s) stopped, %d kept ready",
                surplus,
                key.label,
                len(state.ready),
            )

    def _discard(self, entry: PooledKernel) -> None:
        entry.release()
        self._spawn_background(self._stop(entry.km))

    async def _stop(self, km: ServerKernelManager) -> None:
        """Kill a pooled kernel's process and free its resources (once).

        It holds no user state, so no polite shutdown; and no SIGINT first (what
        ``shutdown_kernel(now=True)`` sends), which prints a KeyboardInterrupt traceback in
        the server's log when the kernel is still importing.
        """
        if km in self._stopped:
            return
        self._stopped.add(km)
        self.starts.forget(getattr(km.provisioner, "pid", None))
        try:
            if km.has_kernel and km.provisioner is not None:
                await km.provisioner.kill()
                await km.provisioner.wait()
            await km.cleanup_resources()
        except (OSError, RuntimeError) as e:  # gone already, or its files are
            self.log.warning("Kernel pool: error while stopping a pooled kernel: %s", e)
        except Exception as e:  # a bug of ours: the pool goes on without the kernel
            count_error("pool.stop", e, "stopping a pooled kernel", logger=self.log)

    def _spawn_background(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- waiting and counting --------------------------------------------------------------

    def _notify(self) -> None:
        """Wake up ``wait_ready`` callers: the pool's contents changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_ready(self, kernel_name: str | None = None, timeout: float = 60.0) -> None:
        """Wait until the pool holds its target of ready kernels for ``kernel_name`` (default
        key).

        For tests, benchmarks and health checks; raises TimeoutError.
        """

        def full() -> bool:
            return any(
                len(state.ready) >= self.target(state)
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

    def booting_pids(self) -> list[int]:
        """Process ids of pooled kernels still starting, not taken over by a claim."""
        kms = [slot.km for s in self._keys.values() for slot in s.starting if not slot.claimed]
        pids = [getattr(km.provisioner, "pid", None) for km in kms if km is not None]
        return [pid for pid in pids if pid is not None]

    def kernel_pids(self) -> list[int]:
        """Process ids of pooled kernels, ready or starting (for tests and diagnostics)."""
        kms = [e.km for s in self._keys.values() for e in s.ready]
        kms += [slot.km for s in self._keys.values() for slot in s.starting if slot.km]
        pids = [getattr(km.provisioner, "pid", None) for km in kms]
        return [pid for pid in pids if pid is not None]
