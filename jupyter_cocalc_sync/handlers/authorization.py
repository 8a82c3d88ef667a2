"""Who may do what: every route and room of the extension asks ``Authorizer`` here.

jupyter_server's ``Authorizer.is_authorized(handler, user, action, resource)`` decides; this
module says which (resource, action) each operation needs:

* reading a notebook (records, history, more output, blobs, the collaboration session, joining
  a room, kernel usage and run progress, the nbgrader tampering check) — ``contents:read``;
* changing it (records, revert, edit actions, answers to ``input()``, a room peer's document
  updates and save requests, writing an nbgrader student version to a new file) —
  ``contents:write``;
* asking for a run (run, interrupt, restart, change kernel, run actions, JupyterLab's
  server-side execute, a room peer or a ``POST …/records`` setting a cell's ``state`` to
  ``"start"``, stateless execute) — ``kernels:execute``; completion, introspection and kernel
  info too: they start the notebook's kernel if needed, and IPython evaluates attribute chains
  to complete or inspect them;
* export (nbconvert can run LaTeX or a browser) — ``nbconvert:read``;
* the list of kernels — ``kernels:read``.

A room peer's rights beyond reading are asked once, when it connects (``peer_permissions``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from ..errors import InternalCrashError
from ..permissions import Permissions


@dataclass(frozen=True)
class Permission:
    resource: str
    action: str

    def __str__(self) -> str:
        return f"{self.resource}:{self.action}"


READ_DOCUMENT = Permission("contents", "read")
CHANGE_DOCUMENT = Permission("contents", "write")
RUN_CODE = Permission("kernels", "execute")
EXPORT = Permission("nbconvert", "read")
LIST_KERNELS = Permission("kernels", "read")

Method = TypeVar("Method", bound=Callable[..., Awaitable[Any]])


def requires(permission: Permission) -> Callable[[Method], Method]:
    """Decorate a handler method (below ``web.authenticated``): 403 unless the user has
    ``permission``; a panic of the CRDT library inside it becomes an ordinary 500."""

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        async def contained(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except (Exception, asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # pyo3's PanicException is not an Exception
                raise InternalCrashError(f"{type(e).__name__}: {e}") from e

        message = f"this needs the {permission} permission"
        return authorized(permission.action, permission.resource, message)(contained)

    return decorate


async def allows(handler: JupyterHandler, permission: Permission) -> bool:
    """Whether the handler's (authenticated) user has ``permission``."""
    user = handler.current_user
    if not user:
        return False
    return bool(
        await ensure_async(
            handler.authorizer.is_authorized(handler, user, permission.action, permission.resource)
        )
    )


async def check_run_requests(handler: JupyterHandler, records: list[Any]) -> None:
    """A record that sets a cell's ``state`` to ``"start"`` asks for a run: 403 without
    ``kernels:execute`` (the runner honours such requests from the server's own writes)."""
    asks_for_a_run = any(isinstance(r, dict) and r.get("state") == "start" for r in records)
    if asks_for_a_run and not await allows(handler, RUN_CODE):
        raise web.HTTPError(403, f'"state": "start" needs the {RUN_CODE} permission')


async def check_action(handler: JupyterHandler, *, runs_code: bool) -> None:
    """A notebook action: 403 unless the user may run code (run actions, a kernel change) or
    change the document (every other action)."""
    permission = RUN_CODE if runs_code else CHANGE_DOCUMENT
    if not await allows(handler, permission):
        raise web.HTTPError(403, f"this action needs the {permission} permission")


async def peer_permissions(handler: JupyterHandler) -> Permissions:
    """What a room peer that may read may also do."""
    return Permissions(
        write=await allows(handler, CHANGE_DOCUMENT), execute=await allows(handler, RUN_CODE)
    )
