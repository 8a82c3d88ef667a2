"""Completion, introspection and kernel info on a notebook's kernel, for clients without a
kernel websocket (scripts, the Python client, other frontends of the SyncDB rooms).

The requests go to the notebook's session kernel — the one that runs its cells, started if
needed — on our own shell connection to it. A kernel answers shell requests one at a time,
so while a cell runs the answer waits for it; past ``timeout`` the request ends with
``ExecutionTimeoutError`` (the kernel itself is left alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import ExecutionTimeoutError

if TYPE_CHECKING:
    from ..kernels.kernel import JupyterKernel
    from .service import ExecutionService

#: seconds a completion or inspection waits for the kernel's answer
INTROSPECTION_TIMEOUT = 30.0


class KernelQueries:
    """``complete``, ``inspect`` and ``kernel_info`` of the notebook at a path."""

    def __init__(self, execution: ExecutionService, timeout: float = INTROSPECTION_TIMEOUT) -> None:
        self.execution = execution
        self.timeout = timeout

    async def complete(self, path: str, code: str, cursor_pos: int) -> dict[str, Any]:
        """The kernel's ``complete_reply`` content (``matches``, ``cursor_start``…)."""
        return await self._ask(path, lambda kernel: kernel.complete(code, cursor_pos))

    async def inspect(
        self, path: str, code: str, cursor_pos: int, detail_level: int = 0
    ) -> dict[str, Any]:
        """The kernel's ``inspect_reply`` content (``found``, ``data``…)."""
        return await self._ask(
            path, lambda kernel: kernel.introspect(code, cursor_pos, detail_level)
        )

    async def kernel_info(self, path: str) -> dict[str, Any]:
        """The kernel's ``kernel_info_reply`` content."""
        return await self._ask(path, lambda kernel: kernel.kernel_info())

    async def _ask(
        self, path: str, request: Callable[[JupyterKernel], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        runner = await self.execution.runner(path)
        kernel = await runner.session_kernel()
        try:
            async with asyncio.timeout(self.timeout):
                return await request(kernel)
        except TimeoutError:
            raise ExecutionTimeoutError(
                f"the kernel of {path} did not answer within {self.timeout:g} s "
                "(a cell may be running: it answers after the cell)"
            ) from None
