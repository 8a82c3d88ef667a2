"""HTTP and WebSocket handlers; every route is listed in ``routes``."""

from __future__ import annotations

from typing import Any

from .kernels import KernelspecsHandler
from .status import StatusHandler


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    """The URL patterns of this extension (relative to the server's base URL)."""
    from .actions import action_routes
    from .assignments import assignment_routes
    from .blobs import blob_routes
    from .collaboration import collaboration_routes
    from .execution import execution_routes
    from .introspection import introspection_routes
    from .kernel_execute import kernel_execute_routes
    from .notebooks import notebook_routes
    from .rooms import room_routes
    from .stateless import stateless_routes

    return [
        (r"/api/cocalc-sync/kernels", KernelspecsHandler),
        (r"/api/cocalc-sync/status", StatusHandler),
        *action_routes(),
        *assignment_routes(),
        *blob_routes(),
        *collaboration_routes(),
        *execution_routes(),
        *introspection_routes(),
        *kernel_execute_routes(),
        *notebook_routes(),
        *room_routes(),
        *stateless_routes(),
    ]
