"""The notebook's kernel for clients without a kernel websocket: completion, introspection,
kernel info (``kernels:execute``: they start the kernel if needed, and IPython evaluates
attribute chains to complete or inspect them), and its usage and run progress
(``contents:read``, like the rooms that show them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tornado import web

from .authorization import READ_DOCUMENT, RUN_CODE, requires
from .notebooks import NOTEBOOK, NotebookHandlerBase

if TYPE_CHECKING:
    from ..execution.introspection import KernelQueries


class KernelQueryHandler(NotebookHandlerBase):
    @property
    def queries(self) -> KernelQueries:
        return self.services.kernel_queries

    def code_and_cursor(self, body: dict[str, Any]) -> tuple[str, int]:
        """``code`` and ``cursor_pos`` (in characters; default: the end of the code)."""
        code, cursor_pos = body.get("code"), body.get("cursor_pos")
        if not isinstance(code, str):
            raise web.HTTPError(400, '"code" must be a string')
        if cursor_pos is None:
            return code, len(code)
        if not isinstance(cursor_pos, int) or isinstance(cursor_pos, bool):
            raise web.HTTPError(400, '"cursor_pos" must be an integer')
        if not 0 <= cursor_pos <= len(code):
            raise web.HTTPError(400, f'"cursor_pos" must be from 0 to {len(code)} (characters)')
        return code, cursor_pos


class CompleteHandler(KernelQueryHandler):
    """``POST …/complete`` ``{"code", "cursor_pos"}`` → the kernel's ``complete_reply``."""

    @web.authenticated
    @requires(RUN_CODE)
    async def post(self, path: str) -> None:
        code, cursor_pos = self.code_and_cursor(self.json_body())
        self.finish_json(await self.queries.complete(self.api_path(path), code, cursor_pos))


class InspectHandler(KernelQueryHandler):
    """``POST …/inspect`` ``{"code", "cursor_pos", "detail_level"}`` → ``inspect_reply``."""

    @web.authenticated
    @requires(RUN_CODE)
    async def post(self, path: str) -> None:
        body = self.json_body()
        code, cursor_pos = self.code_and_cursor(body)
        detail_level = body.get("detail_level", 0)
        if detail_level not in (0, 1) or isinstance(detail_level, bool):
            raise web.HTTPError(400, '"detail_level" must be 0 or 1')
        reply = await self.queries.inspect(self.api_path(path), code, cursor_pos, detail_level)
        self.finish_json(reply)


class KernelInfoHandler(KernelQueryHandler):
    """``GET …/kernel_info`` → the kernel's ``kernel_info_reply``."""

    @web.authenticated
    @requires(RUN_CODE)
    async def get(self, path: str) -> None:
        self.finish_json(await self.queries.kernel_info(self.api_path(path)))


class KernelUsageHandler(NotebookHandlerBase):
    """``GET …/kernel_usage`` → ``{"kernel_usage": {"memory", "cpu", "time"} | null,
    "run_progress": {"done", "total", "running"} | null}`` (never starts a kernel)."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, path: str) -> None:
        activity = await self.services.execution.activity(self.api_path(path))
        self.finish_json(activity.to_json())


def introspection_routes() -> list[tuple[str, type]]:
    return [
        (NOTEBOOK + r"/complete", CompleteHandler),
        (NOTEBOOK + r"/inspect", InspectHandler),
        (NOTEBOOK + r"/kernel_info", KernelInfoHandler),
        (NOTEBOOK + r"/kernel_usage", KernelUsageHandler),
    ]
