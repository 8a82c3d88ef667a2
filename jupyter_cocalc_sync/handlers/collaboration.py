"""jupyter-collaboration's history routes: the timeline slider and forks.

* ``GET /api/collaboration/timeline/{path}?format=json&type=notebook`` → ``{roomId,
  timestamps, forkRoom, sessionId}`` (and ``versions``, ``authors``: one per timestamp);
* ``PUT /api/collaboration/undo_redo/{roomId}?action=undo|redo|restore&steps=n&forkRoom=…``;
* ``PUT|GET /api/collaboration/fork/{root_roomid}``, ``DELETE …/fork/{fork_roomid}?merge=``.

Reading history (a timeline, its moves, the list of forks) needs ``contents:read``; restoring,
making a fork and deleting or merging one need ``contents:write``.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from ..history.forks import ForkInfo
from .authorization import CHANGE_DOCUMENT, READ_DOCUMENT, allows, requires
from .base import CocalcAPIHandler


class CollaborationHandler(CocalcAPIHandler):
    def required_argument(self, name: str) -> str:
        value = self.get_query_argument(name, None)
        if value is None:
            raise web.HTTPError(400, f"the query argument {name!r} is required")
        return value

    async def check_write(self) -> None:
        if not await allows(self, CHANGE_DOCUMENT):
            raise web.HTTPError(403, f"this needs the {CHANGE_DOCUMENT} permission")


class TimelineHandler(CollaborationHandler):
    """``GET …/timeline/{path}``: a new timeline of the notebook (a fork room showing it)."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, path: str) -> None:
        path = self.collaboration_path(path)
        self.required_argument("format")
        if self.required_argument("type") != "notebook":
            raise web.HTTPError(404, "history is kept for notebooks only")
        document = await self.services.documents.get(path)
        await self.finish_large_json(await self.services.history.timeline(document))


class UndoRedoHandler(CollaborationHandler):
    """``PUT …/undo_redo/{roomId}``: move a timeline's fork, or restore what it shows."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def put(self, room_id: str) -> None:
        action = self.required_argument("action")
        fork_room = self.required_argument("forkRoom")
        history = self.services.history
        if action == "restore":
            await self.check_write()
            version = await history.restore(room_id, fork_room, self.origin)
            self.finish_json(
                {"code": 200, "status": "Document restored successfully", "version": version}
            )
            return
        try:
            steps = int(self.required_argument("steps"))
        except ValueError:
            raise web.HTTPError(400, '"steps" must be an integer') from None
        self.finish_json(await history.move(room_id, fork_room, action, steps))


class ForkHandler(CollaborationHandler):
    """``GET`` the forks of a room, ``PUT`` a new fork of it, ``DELETE`` a fork."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, root_room: str) -> None:
        self.finish_json(self.services.history.forks_of(root_room))

    @web.authenticated
    @requires(CHANGE_DOCUMENT)
    async def put(self, root_room: str) -> None:
        body = self.json_body(required=False)
        info = ForkInfo(
            root_room,
            synchronize=_typed(body, "synchronize", bool, False),
            title=_typed(body, "title", str, ""),
            description=_typed(body, "description", str, ""),
        )
        history = self.services.history
        fork = await history.create_fork(root_room, info, self.origin.user or "")
        document = fork.document
        self.finish_json(
            {
                "sessionId": document.session_id,
                "fork_roomid": fork.room_id,
                "fork_info": info.to_json(),
            },
            status=201,
        )

    @web.authenticated
    @requires(CHANGE_DOCUMENT)
    async def delete(self, fork_room: str) -> None:
        merge = self.required_argument("merge")
        if merge not in ("true", "false"):
            raise web.HTTPError(400, '"merge" must be true or false')
        await self.services.history.delete_fork(
            fork_room, merge=merge == "true", origin=self.origin
        )
        self.set_status(200)
        self.finish()


def _typed(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """``body[name]`` if it is a ``kind`` (None and absent: ``default``), else a 400."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise web.HTTPError(400, f"{name!r} must be a {kind.__name__}")
    return value


def collaboration_routes() -> list[tuple[str, type]]:
    return [
        (r"/api/collaboration/timeline/(.+)", TimelineHandler),
        (r"/api/collaboration/undo_redo/(.+)", UndoRedoHandler),
        (r"/api/collaboration/fork/(.+)", ForkHandler),
    ]
