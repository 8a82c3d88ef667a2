"""What the handlers are given: the services the extension built, in one typed settings entry.

The extension puts a ``Services`` in the web app's settings when it loads; handlers read it
with ``services_of`` and never see the extension itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tornado.web import RequestHandler

    from ..assignments.service import AssignmentService
    from ..documents.manager import DocumentManager
    from ..documents.text import FileRooms
    from ..execution.activity_clock import ActivityClock
    from ..execution.introspection import KernelQueries
    from ..execution.requests import ExecutionRequests
    from ..execution.service import ExecutionService
    from ..export.exporter import NotebookExporter
    from ..history.service import HistoryService
    from ..outputs.blobs import BlobStore
    from ..rooms.registry import RoomRegistry
    from ..stateless import StatelessExecutor
    from .rooms import RoomConnections

#: the web-app setting holding the ``Services``
SETTING = "cocalc_sync_services"


@dataclass(frozen=True)
class RequestLimits:
    """Sizes past which a request or a websocket is refused (``CocalcSync`` settings)."""

    max_body_bytes: int
    max_frame_bytes: int
    send_queue_bytes: int


@dataclass(frozen=True)
class Services:
    documents: DocumentManager
    file_rooms: FileRooms
    rooms: RoomRegistry
    #: the room websockets open (closed when the server stops)
    connections: RoomConnections
    execution: ExecutionService
    #: jupyter-server-nbmodel's execution requests
    execution_requests: ExecutionRequests
    kernel_queries: KernelQueries
    exporter: NotebookExporter
    stateless: StatelessExecutor
    assignments: AssignmentService
    #: timelines and forks (jupyter-collaboration's history routes)
    history: HistoryService
    blobs: BlobStore
    activity: ActivityClock
    limits: RequestLimits
    #: ``GET /api/cocalc-sync/status``'s body
    status: Callable[[], dict[str, Any]]
    #: whether the contents manager has a file at an API path
    file_exists: Callable[[str], Awaitable[bool]]


def services_of(handler: RequestHandler) -> Services:
    """The services of the extension serving ``handler`` (in its settings since it loaded)."""
    services: Services = handler.settings[SETTING]
    return services
