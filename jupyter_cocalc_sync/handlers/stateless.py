"""``POST /api/cocalc-sync/execute``: run one-off code in a fresh kernel (stateless)."""

from __future__ import annotations

from tornado import web

from ..stateless import ExecuteRequest
from .authorization import RUN_CODE, requires
from .base import CocalcAPIHandler


class StatelessExecuteHandler(CocalcAPIHandler):
    """``{"kernel","code","history","path","timeout_ms","max_output","no_cache"}`` →
    ``{"outputs","cached"}``; 408 past the time limit, 429 (``Retry-After``) past the cap."""

    auth_resource = "kernels"

    @web.authenticated
    @requires(RUN_CODE)
    async def post(self) -> None:
        default_kernel = self.kernel_manager.default_kernel_name
        request = ExecuteRequest.from_json(self.json_body(), default_kernel=default_kernel)
        if request.path is not None:
            request = request.with_path(self.api_path(request.path))
        result = await self.services.stateless.execute(request)
        await self.finish_large_json(result.to_json())


def stateless_routes() -> list[tuple[str, type]]:
    return [(r"/api/cocalc-sync/execute", StatelessExecuteHandler)]
