"""The notebook's kernel on the Python client: completion, introspection, kernel info, and
its usage and run progress (live: the server's awareness state in the notebook's room)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import CocalcSyncClient


class KernelQueriesMixin:
    """``LiveNotebook``'s questions to its notebook's kernel (started on the server if
    needed)."""

    if TYPE_CHECKING:
        client: CocalcSyncClient
        server_state: dict[str, Any]

        def _url(self, suffix: str) -> str: ...

    @property
    def kernel_usage(self) -> dict[str, Any] | None:
        """``{"memory": bytes, "cpu": percent of one core, "time": ms}`` of the kernel's
        process tree, as last sampled (live); None without a local kernel."""
        return self.server_state.get("kernel_usage")

    @property
    def run_progress(self) -> dict[str, Any] | None:
        """``{"done", "total", "running"}``: cells done of those queued since the runner
        last became busy (live); None before the first run."""
        return self.server_state.get("run_progress")

    async def fetch_kernel_usage(self) -> dict[str, Any]:
        """``{"kernel_usage", "run_progress"}`` from the REST API (what the live properties
        show, for a client that is not in the room)."""
        return await self.client.request_json("GET", self._url("/kernel_usage"))

    async def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        """The kernel's ``complete_reply``: ``matches``, ``cursor_start``, ``cursor_end``…
        ``cursor_pos`` counts characters (default: the end of ``code``)."""
        body = {"code": code, "cursor_pos": cursor_pos}
        return await self.client.request_json("POST", self._url("/complete"), body)

    async def inspect(
        self, code: str, cursor_pos: int | None = None, detail_level: int = 0
    ) -> dict[str, Any]:
        """The kernel's ``inspect_reply`` (what ``?``, or ``??`` with ``detail_level=1``,
        shows): ``found`` and ``data`` (a MIME bundle)."""
        body = {"code": code, "cursor_pos": cursor_pos, "detail_level": detail_level}
        return await self.client.request_json("POST", self._url("/inspect"), body)

    async def kernel_info(self) -> dict[str, Any]:
        """The kernel's ``kernel_info_reply``: ``language_info``, ``implementation``…"""
        return await self.client.request_json("GET", self._url("/kernel_info"))
