"""The pool-aware kernel manager: every kernel start in the server may take a pooled kernel.

Set as ``ServerApp.kernel_manager_class`` (the package's jupyter-config does), so JupyterLab
sessions, ``POST /api/kernels`` and this extension's runner all go through it.

Where the pool plugs in: jupyter_server's ``start_kernel`` turns the API path into a working
directory, builds the environment, then asks its "pinned" superclass (jupyter_client's
``MultiKernelManager``) to launch a process; afterwards it does its own bookkeeping
(connection counts, activity watching, culling, metrics, events). Only that launch step is
replaced — by "take a ready kernel from the pool and re-point it" when one matches — so the
bookkeeping runs unchanged for pooled and normally started kernels alike.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from jupyter_client.multikernelmanager import MultiKernelManager
from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import ServerKernelManager
from jupyter_server.utils import ApiPath
from traitlets import Instance

from ..kernels.activity_watch import SharedActivityWatch
from .claims import Claims
from .kernel_pool import KernelPool, PooledKernel


class _PoolAwareLaunch(MultiKernelManager):
    """jupyter_server's ``pinned_superclass``: the process launch, with the pool in front, and
    stops and restarts that let a just-claimed kernel settle first (``claims``)."""

    async def _async_start_kernel(self, **kwargs: Any) -> str:
        return await cast("PoolingKernelManager", self)._launch_or_claim(**kwargs)

    async def _async_shutdown_kernel(
        self, kernel_id: str, now: bool | None = False, restart: bool | None = False
    ) -> None:
        manager = cast("PoolingKernelManager", self)
        await manager.claims.until_settled(kernel_id)
        await manager.until_restarted(kernel_id)
        await MultiKernelManager._async_shutdown_kernel(self, kernel_id, now=now, restart=restart)

    async def _async_restart_kernel(self, kernel_id: str, now: bool = False) -> None:
        manager = cast("PoolingKernelManager", self)
        await manager.claims.until_settled(kernel_id)
        ended = asyncio.Event()
        manager.restarts.setdefault(kernel_id, []).append(ended)
        try:
            await MultiKernelManager._async_restart_kernel(self, kernel_id, now=now)
        finally:
            ended.set()
            under_way = manager.restarts[kernel_id]
            under_way.remove(ended)
            if not under_way:
                del manager.restarts[kernel_id]


class PoolingKernelManager(SharedActivityWatch):
    """jupyter_server's kernel manager, handing out pre-started kernels (``KernelPool``), whose
    activity watching our kernel connections take over (``SharedActivityWatch``).

    Unclaimed pooled kernels are not in the kernel map: ``list_kernels``, ``kernel_model``,
    ``/api/kernels``, ``/api/status``, the culler and the idle-shutdown timer never see them.
    """

    pool = Instance(KernelPool)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pinned_superclass = _PoolAwareLaunch
        #: claimed kernels whose start (jupyter_server's bookkeeping) has not finished yet
        self._claimed: dict[str, PooledKernel] = {}
        #: claimed kernels whose start has: their re-pointing and head starts
        self.claims = Claims(self, self.log)
        #: kernel id -> an event per restart of it under way, set when that restart ends
        self.restarts: dict[str, list[asyncio.Event]] = {}
        # Created here, so invalid pool settings stop the server at startup.
        self.pool = KernelPool(parent=self, log=self.log)

    def __bool__(self) -> bool:
        # ServerApp.cleanup_kernels skips shutdown_all when `not kernel_manager`, and
        # MultiKernelManager.__len__ makes a manager with no claimed kernels falsy: the
        # pool's kernels would outlive the server.
        return True

    async def until_restarted(self, kernel_id: str) -> None:
        """Return once no restart of the kernel is under way (whichever way each one ended).

        jupyter_client's shutdown reads ``ready.exception()``, which raises InvalidStateError
        while a restart's ``ready`` is pending (a restart asked for here, or one by the
        kernel's auto-restarter after it died): a server stopping then skipped the rest of its
        cleanup, and the restart went on to start a kernel nobody stopped. After the restart
        (jupyter_client bounds both its halves), the shutdown stops the kernel it brought up.
        """
        while True:
            for ended in list(self.restarts.get(kernel_id, ())):
                await ended.wait()
            km = self._kernels.get(kernel_id)
            ready = getattr(km, "ready", None)
            if ready is None or ready.done():
                return
            await asyncio.wait([asyncio.wrap_future(ready)])

    def start_pool(self) -> None:
        """Start filling the pool now (idempotent, returns at once; needs the running loop).

        The extension calls it once the server's event loop runs; the first kernel start
        calls it too, in case nobody did.
        """
        self.pool.start()

    def pool_status(self) -> dict[str, Any]:
        """The pool's settings and per-key counts of ready and starting kernels (JSON-able)."""
        return {**self.pool.status(), **self.claims.status()}

    def pool_launch_kwargs(self, kernel_name: str) -> dict[str, Any]:
        """The launch options a start of ``kernel_name`` without a path gets from this server."""
        policy = getattr(self, "_kernel_start_kwargs", None)  # absent from older 2.x releases
        return policy(kernel_name=kernel_name) if policy else {"kernel_name": kernel_name}

    async def _async_start_kernel(
        self, *, kernel_id: str | None = None, path: ApiPath | None = None, **kwargs: Any
    ) -> str:
        # Started lazily (after the refill delay, so it does not slow this very start).
        self.pool.start(initial_delay=self.pool.launch_delay_ms / 1000)
        with self.pool.start_under_way():  # (no refill competes with it)
            kernel_id = await super()._async_start_kernel(kernel_id=kernel_id, path=path, **kwargs)
        claimed = self._claimed.pop(kernel_id, None)
        if claimed is not None:
            km = claimed.km
            # jupyter_server marks every new kernel "starting" until its iopub says otherwise,
            # and a websocket connecting to a "starting" kernel polls every 50 ms; a claimed
            # kernel is known to be up (it answered the pool) and says nothing.
            km.execution_state = "idle"
            self.claims.add(claimed, km)
        return kernel_id

    # (jupyter_server binds the async implementation as the public name the same way)
    start_kernel = _async_start_kernel  # type: ignore[assignment]  # a coroutine for a method

    def interrupt_kernel(self, kernel_id: str) -> None:
        if self.claims.when_settled(kernel_id) is not None:
            # Nothing of the notebook's runs before the kernel has settled (every client waits
            # for ``ready``), and a SIGINT now would only break the re-pointing code.
            self.log.info("Kernel %s: interrupt ignored, nothing runs on it yet", kernel_id)
            return None
        return super().interrupt_kernel(kernel_id)

    def pre_start_kernel(
        self, kernel_name: str | None, kwargs: dict[str, Any]
    ) -> tuple[ServerKernelManager, str, str]:
        km, kernel_name, kernel_id = super().pre_start_kernel(kernel_name, kwargs)
        if not isinstance(km, ServerKernelManager):  # the pool uses its state and activity
            raise TypeError(
                "PoolingKernelManager needs a kernel_manager_class derived from "
                f"ServerKernelManager, not {type(km).__name__}"
            )
        # A kernel is listed (``/api/status``, ``/api/kernels``) as soon as it is in the kernel
        # map, but jupyter_server sets its ``last_activity`` only once the start has finished;
        # a listing in between failed with a 500. Its activity watcher sets it again later.
        km.last_activity = utcnow()
        return km, kernel_name, kernel_id

    async def _launch_or_claim(self, **kwargs: Any) -> str:
        """Take a pooled kernel for this start if one matches, else launch one normally.

        ``kwargs`` are the launch options after jupyter_server's processing (``cwd`` from the
        path, ``env`` with ``JPY_SESSION_NAME`` for sessions). An explicit ``kernel_id`` (a
        client choosing the id, jupyter_server PR #1655) always gets a fresh kernel; since
        that PR ``kernel_id=None`` may be passed explicitly, hence ``get(...) is None``.
        """
        if kwargs.get("kernel_id") is None:
            kwargs.pop("kernel_id", None)
            claimed = await self.pool.claim(kwargs)
            if claimed is not None:
                kernel_id = claimed.kernel_id
                self._kernels[kernel_id] = claimed.km
                self._claimed[kernel_id] = claimed
                return kernel_id
        return await MultiKernelManager._async_start_kernel(self, **kwargs)

    async def _async_shutdown_all(self, now: bool = False) -> None:
        """Stop the pool's kernels first (no new claims), then every claimed kernel."""
        await self.pool.close()
        self.claims.close()
        await super()._async_shutdown_all(now=now)

    shutdown_all = _async_shutdown_all  # type: ignore[assignment]  # as start_kernel
