"""``GET /api/cocalc-sync/status``: the extension's health (``kernels:read``, as the list of
kernels: it describes the server, not a document)."""

from __future__ import annotations

from tornado import web

from .authorization import LIST_KERNELS, requires
from .base import CocalcAPIHandler


class StatusHandler(CocalcAPIHandler):
    """``{"version", "documents": {"notebooks", "files"}, "errors": {place: count}}``;
    ``errors`` counts what the catch-alls that keep the server going caught."""

    @web.authenticated
    @requires(LIST_KERNELS)
    async def get(self) -> None:
        self.finish_json(self.services.status())


__all__ = ["StatusHandler"]
