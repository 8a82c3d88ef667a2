"""``StatelessExecutor``: run one-off code in a fresh kernel, with limits, a time limit and a
cache (``POST /api/cocalc-sync/execute``).

A request runs ``history`` (output dropped) and then ``code`` in a kernel nobody used before,
which is stopped afterwards. Its output goes through the same ``OutputHandler`` as a notebook
cell's (streams coalesced, ``\\r``/``\\b`` applied, ``clear_output``, display updates), limited
to ``max_output`` characters and the server's message limit, with a ``{"more_output": true}``
marker where it was cut; images stay inline. Past its time limit a run is interrupted, then its
kernel is killed, and the request fails with ``ExecutionTimeoutError``. Finished runs are cached
by request hash; at most ``max_concurrent`` runs go at once, the rest are refused.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import (
    DocumentNotFoundError,
    ExecutionTimeoutError,
    KernelNotFoundError,
    TooManyExecutionsError,
)
from ..outputs.handler import OutputHandler, OutputLimits
from .cache import ResultCache
from .pool import FreshKernel, FreshKernelPool
from .request import ExecuteRequest, ExecuteResult

#: seconds a refused client is told to wait (``Retry-After``)
RETRY_AFTER_S = 1


class KernelSpecs(Protocol):
    """What the executor needs of jupyter_client's ``KernelSpecManager``."""

    def find_kernel_specs(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class StatelessSettings:
    root_dir: str
    #: time limit of a request that gives none, and the largest one a request may ask for
    timeout_s: float = 30.0
    max_timeout_s: float = 600.0
    max_concurrent: int = 20
    limits: OutputLimits = field(default_factory=OutputLimits)


@dataclass(frozen=True)
class RunOutputs:
    messages: list[dict[str, Any]]
    #: the kernel replied (False: it died during the run, and the messages end with the
    #: synthetic ``DeadKernelError``)
    complete: bool


class StatelessExecutor:
    """Runs ``ExecuteRequest``s (see the module docstring)."""

    def __init__(
        self,
        settings: StatelessSettings,
        pool: FreshKernelPool,
        cache: ResultCache,
        kernel_specs: KernelSpecs,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.cache = cache
        self.kernel_specs = kernel_specs
        self.running = 0

    async def execute(self, request: ExecuteRequest) -> ExecuteResult:
        limit = min(
            request.max_output or self.settings.limits.max_length, self.settings.limits.max_length
        )
        timeout = self._timeout(request)
        cwd = self._working_directory(request.path)
        key = request.cache_key(limit)
        if not request.no_cache:
            outputs = await self.cache.get(key)
            if outputs is not None:
                return ExecuteResult(outputs, cached=True)
        await self._check_kernel(request.kernel)
        if self.running >= self.settings.max_concurrent:
            raise TooManyExecutionsError(
                f"{self.running} stateless runs are going on, the most this server allows "
                f"(CocalcSync.stateless_max_concurrent); retry in {RETRY_AFTER_S} s",
                retry_after=RETRY_AFTER_S,
            )
        self.running += 1
        try:
            run = await self._run(request, cwd, limit, timeout)
        finally:
            self.running -= 1
        if run.complete:  # not a kernel that died: that may go better next time
            await self.cache.put(key, run.messages)
        return ExecuteResult(run.messages, cached=False)

    def _timeout(self, request: ExecuteRequest) -> float:
        if request.timeout_ms is None:
            return self.settings.timeout_s
        return min(request.timeout_ms / 1000, self.settings.max_timeout_s)

    def _working_directory(self, path: str | None) -> str | None:
        """The folder a run with ``path`` works in: ``path`` itself if it is a folder, else
        the folder holding it (which must exist)."""
        if path is None:
            return None
        full = os.path.join(self.settings.root_dir, *path.split("/"))
        folder = full if os.path.isdir(full) else os.path.dirname(full)
        if not os.path.isdir(folder):
            raise DocumentNotFoundError(f"no folder for path {path!r} in the server root")
        return folder

    async def _check_kernel(self, name: str) -> None:
        specs = await asyncio.to_thread(self.kernel_specs.find_kernel_specs)
        if name not in specs:
            raise KernelNotFoundError(f"no kernel named {name!r}; installed: {sorted(specs)}")

    async def _run(
        self, request: ExecuteRequest, cwd: str | None, limit: int, timeout: float
    ) -> RunOutputs:
        # the time limit is for the code: a kernel's start has its own (startup_timeout)
        fresh = await self.pool.take(request.kernel, cwd)
        run = asyncio.ensure_future(self._history_then_code(fresh, request, limit))
        try:
            done, _ = await asyncio.wait({run}, timeout=timeout)
        except asyncio.CancelledError:
            run.cancel()
            self.pool.discard(fresh, kill=True)
            raise
        if not done:
            await self.pool.interrupt_then_kill(fresh, run)
            run.cancel()
            raise ExecutionTimeoutError(
                f"the code ran longer than {timeout:g} s; it was interrupted and its kernel "
                "stopped (give a larger timeout_ms if it needs longer)"
            )
        self.pool.discard(fresh)
        return run.result()

    async def _history_then_code(
        self, fresh: FreshKernel, request: ExecuteRequest, limit: int
    ) -> RunOutputs:
        kernel = fresh.kernel
        for code in request.history:
            await kernel.execute_code(code, allow_stdin=False).go()
        handler = OutputHandler(
            "stateless",
            limits=OutputLimits(limit, self.settings.limits.max_messages),
        )
        emitter = kernel.execute_code(request.code, allow_stdin=False)
        async for msg in emitter:
            handler.handle(msg)
        await handler.finish()
        return RunOutputs(handler.messages, complete=emitter.reply is not None)
