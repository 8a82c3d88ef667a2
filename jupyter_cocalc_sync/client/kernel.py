"""The notebook's kernel on the Python client: completion, introspection, kernel info."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import CocalcSyncClient


class KernelQueriesMixin:
    """``LiveNotebook``'s questions to its notebook's kernel (started on the server if
    needed)."""

    if TYPE_CHECKING:
        client: CocalcSyncClient

        def _url(self, suffix: str) -> str: ...

    async def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        """The kernel's ``complete_reply``: ``matches``, ``cursor_start``, ``cursor_end``…
        ``cursor_pos`` counts characters (default: the end of ``code``)."""
        body = {"code": code, "cursor_pos": cursor_pos}
        return await self.client.request("POST", self._url("/complete"), body)

    async def inspect(
        self, code: str, cursor_pos: int | None = None, detail_level: int = 0
    ) -> dict[str, Any]:
        """The kernel's ``inspect_reply`` (what ``?``, or ``??`` with ``detail_level=1``,
        shows): ``found`` and ``data`` (a MIME bundle)."""
        body = {"code": code, "cursor_pos": cursor_pos, "detail_level": detail_level}
        return await self.client.request("POST", self._url("/inspect"), body)

    async def kernel_info(self) -> dict[str, Any]:
        """The kernel's ``kernel_info_reply``: ``language_info``, ``implementation``…"""
        return await self.client.request("GET", self._url("/kernel_info"))
