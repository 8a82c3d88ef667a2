"""What every handler shares: authentication resource, JSON bodies, paths, error statuses.

Handlers parse, authorise, call a service and map errors to statuses; nothing else.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import anyio
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..errors import (
    AssignmentError,
    DocumentNotFoundError,
    ExecutionTimeoutError,
    ExportFormatError,
    InvalidActionError,
    InvalidRecordError,
    InvalidRequestError,
    KernelError,
    KernelNotFoundError,
    NotebookFormatError,
    PathOutsideRootError,
    StoreUnavailableError,
    TargetExistsError,
    TooManyExecutionsError,
    VersionNotFoundError,
)
from ..errors_seen import count_error
from ..origin import Origin
from ..paths import check_api_path
from .services import Services, services_of

#: the package's own errors -> HTTP status (first match wins); any other exception is a bug
#: of the server, answered 500 with a request id that its log line carries too
ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (PathOutsideRootError, 400),
    (DocumentNotFoundError, 404),
    (VersionNotFoundError, 404),
    (InvalidRecordError, 400),
    (InvalidActionError, 400),
    (InvalidRequestError, 400),
    (KernelNotFoundError, 404),
    (TooManyExecutionsError, 429),
    (AssignmentError, 422),
    (TargetExistsError, 409),
    (NotebookFormatError, 422),
    (ExecutionTimeoutError, 408),
    (KernelError, 503),
    (StoreUnavailableError, 503),
    (ExportFormatError, 400),
)


def status_for(exc: BaseException) -> int | None:
    for klass, status in ERROR_STATUS:
        if isinstance(exc, klass):
            return status
    return None


#: the encoder of large JSON bodies
_LARGE_JSON = json.JSONEncoder(ensure_ascii=False)


class CocalcAPIHandler(APIHandler):
    """Base of the REST handlers: ``contents`` authorisation unless a subclass says otherwise."""

    auth_resource = "contents"
    #: whether tornado computes an ETag for the response (off for large bodies)
    _etag = True

    @property
    def services(self) -> Services:
        return services_of(self)

    @property
    def origin(self) -> Origin:
        """The origin of the changes this request makes: its user (authorized before the
        request got here)."""
        user = self.current_user
        return Origin.of_user(getattr(user, "username", None) if user else None)

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler narrows it
        limit = self.services.limits.max_body_bytes
        if len(self.request.body or b"") > limit:
            raise web.HTTPError(413, f"the body is larger than {limit} bytes (max_body_bytes)")
        await super().prepare()

    def api_path(self, path: str) -> str:
        try:
            return check_api_path(self.settings["server_root_dir"], path)
        except PathOutsideRootError as e:
            raise web.HTTPError(400, str(e)) from None

    def collaboration_path(self, path: str) -> str:
        """An API path as jupyter-collaboration's frontend sends it: its timeline slider keeps
        the ``/`` in front of the path it cut out of its own URL (to jupyter_server an API path
        is relative to the root with or without one)."""
        return self.api_path(path[1:] if path.startswith("/") else path)

    def json_body(self, *, required: bool = True) -> dict[str, Any]:
        """The request body as a JSON object (whatever the Content-Type), or a 400."""
        body = self.request.body
        if not body:
            if required:
                raise web.HTTPError(400, "a JSON object body is required")
            return {}
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise web.HTTPError(400, f"the body is not valid JSON: {e}") from None
        if not isinstance(value, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return value

    def finish_json(self, value: Mapping[str, Any] | list[Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, ensure_ascii=False))

    async def finish_large_json(self, value: Mapping[str, Any] | list[Any]) -> None:
        """``finish_json`` for bodies that may be megabytes (records, overflow, history): the
        encoding runs in a thread, so the event loop keeps serving everyone else. ``value``
        must not be changed meanwhile (pass a fresh copy, not live state).

        The text is built piece by piece: ``json.dumps`` is one C call that holds the GIL
        (and so the event loop) for as long as it runs, thread or not. No ETag: tornado would
        hash the whole body on the event loop."""
        body = await anyio.to_thread.run_sync(lambda: "".join(_LARGE_JSON.iterencode(value)))
        self._etag = False
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    def compute_etag(self) -> str | None:
        return super().compute_etag() if self._etag else None

    def finish_raw(self, body: str | bytes, content_type: str) -> None:
        """Finish with a non-JSON body (``APIHandler.finish`` would force a JSON type)."""
        self.set_header("Content-Type", content_type)
        super(APIHandler, self).finish(body)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if value is not None and status_for(value) is not None:
            return  # an expected client error: answered with its status, not logged as a crash
        if value is not None and not isinstance(value, web.HTTPError):
            self._request_id = uuid.uuid4().hex[:16]
            what = f"request {self._request_id} ({self.request.method} {self.request.path})"
            count_error("request", value, what, logger=self.log)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info is not None else None
        status = status_for(exc) if exc is not None else None
        request_id = getattr(self, "_request_id", None)
        if status is not None:
            body = {"message": str(exc), "reason": type(exc).__name__}
        elif request_id is not None:
            status = 500
            body = {
                "message": f"internal server error (request {request_id})",
                "request_id": request_id,
            }
        else:
            super().write_error(status_code, **kwargs)
            return
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int):
            self.set_header("Retry-After", str(retry_after))
        self.finish(json.dumps(body))
