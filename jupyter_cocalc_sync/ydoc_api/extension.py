"""What ``jupyter_server_ydoc`` offers other server extensions, served from this server's rooms.

Extensions that read or edit open documents inside the server (AI assistants above all) find
jupyter-collaboration's extension object in ``web_app.settings["jupyter_server_ydoc"]`` and use:

* ``ywebsocket_server.room_exists(room_id)`` and ``await ywebsocket_server.get_room(room_id)``:
  a room with ``ydoc``, ``awareness`` and ``_document`` (the ``jupyter_ydoc`` document);
* ``await get_document(path=, content_type=, file_format=, room_id=, copy=, create=)``: the
  room's document (``copy=True``: a detached copy of it).

Here each calling extension gets a ``Replica`` of the room (``replica.py``): its edits are a
collaborator's, committed under ``extension:<package>`` (the package that called) and saved.
A document room exists for every file there is (the server opens it on demand), so an extension
never falls back to writing the file under a live notebook; an awareness room (``JupyterLab:
globalAwareness``) exists while a JupyterLab window is connected to it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

from pycrdt import Doc

from ..errors import DocumentNotFoundError
from .replica import Replica

if TYPE_CHECKING:
    from jupyter_ydoc.ybasedoc import YBaseDoc

    from ..documents.manager import DocumentManager
    from ..rooms.registry import RoomRegistry
    from ..transport.room import Peer

#: the name jupyter-collaboration's server extension has (settings key, extension name)
NAME = "jupyter_server_ydoc"
#: modules whose frames are not "the caller" (this package, and what an ``await`` goes through)
PLUMBING = {"jupyter_cocalc_sync", "asyncio", "contextlib", "functools", "inspect", "typing"}


class RoomNotFound(LookupError):  # (the name jupyter_server_ydoc gives it)
    """No room of that id (no such file)."""


def calling_extension(depth: int = 2) -> str:
    """The top-level package of the code that called into this API."""
    frame: FrameType | None = sys._getframe(depth)
    while frame is not None:
        package = str(frame.f_globals.get("__name__", "")).split(".", 1)[0]
        if package and package not in PLUMBING:
            return package
        frame = frame.f_back
    return "unknown"


class ExtensionRooms:
    """``ywebsocket_server``: the rooms as extensions see them (module docstring)."""

    def __init__(
        self, registry: RoomRegistry, documents: DocumentManager, *, idle_timeout: float
    ) -> None:
        self.registry = registry
        self.documents = documents
        self.idle_timeout = idle_timeout
        #: (room id, author) -> that extension's replica of the room
        self._replicas: dict[tuple[str, str], Replica] = {}

    @property
    def rooms(self) -> dict[str, Replica]:
        """The rooms extensions have joined (one replica per room id)."""
        return {room_id: r for (room_id, _), r in self._replicas.items() if not r.closed}

    def room_exists(self, room_id: str) -> bool:
        file_type = _file_type(room_id)
        if file_type is None:
            return room_id in self.registry.transient
        try:
            self.documents.path_of(room_id.split(":", 2)[2])
        except DocumentNotFoundError:
            return False
        return True

    async def get_room(self, room_id: str) -> Replica:
        return await self.replica(room_id, f"extension:{calling_extension()}")

    async def replica(self, room_id: str, author: str) -> Replica:
        """``author``'s replica of ``room_id``, up to date with the room."""
        if not self.room_exists(room_id):
            raise RoomNotFound(room_id)
        replica = self._replicas.get((room_id, author))
        if replica is None or replica.closed:
            replica = Replica(
                room_id,
                _file_type(room_id),
                author,
                self._joiner(room_id),
                idle_timeout=self.idle_timeout,
            )
            self._replicas[(room_id, author)] = replica
        await replica.ready()
        return replica

    def _joiner(self, room_id: str) -> Callable[[Peer], Any]:
        async def join(peer: Peer) -> Any:
            return await self.registry.join("collaboration", room_id, peer, None)

        return join

    def close(self) -> None:
        for replica in self._replicas.values():
            replica.close()
        self._replicas.clear()


class YDocExtensionAPI:
    """Stands where ``jupyter_server_ydoc``'s ``YDocExtension`` stands (module docstring)."""

    name = NAME
    #: (extensions read this to know whether real-time collaboration is on)
    disable_rtc = False

    def __init__(self, rooms: ExtensionRooms, file_id: Callable[[str], str]) -> None:
        self.ywebsocket_server = rooms
        self._file_id = file_id

    async def get_document(
        self,
        *,
        path: str | None = None,
        content_type: str | None = None,
        file_format: Literal["json", "text"] | None = None,
        room_id: str | None = None,
        copy: bool = True,
        create: bool = False,
    ) -> YBaseDoc | None:
        """The document of a room: the room's own (``copy=False``; edits are the calling
        extension's) or a detached copy of it. Give ``room_id``, or ``path``, ``content_type``
        and ``file_format``. ``None`` if there is no such file (``create`` changes nothing:
        a room exists for every file)."""
        message = (
            "You need to provide either a ``room_id`` or the ``path``, "
            "the ``content_type`` and the ``file_format``."
        )
        if room_id is None:
            if path is None or content_type is None or file_format is None:
                raise ValueError(message)
            try:
                file_id = self._file_id(path)
            except DocumentNotFoundError:
                return None
            room_id = f"{file_format}:{content_type}:{file_id}"
        elif path is not None or content_type is not None or file_format is not None:
            raise ValueError(message)
        if _file_type(room_id) is None:
            return None
        rooms = self.ywebsocket_server
        try:
            replica = await rooms.replica(room_id, f"extension:{calling_extension()}")
        except (RoomNotFound, DocumentNotFoundError):
            return None
        document = replica.document
        if document is None or not copy:
            return document
        fork: Doc[Any] = Doc()
        fork.apply_update(replica.ydoc.get_update())
        return type(document)(fork)


def _file_type(room_id: str) -> str | None:
    """The document type a room id names (None: an awareness room)."""
    parts = room_id.split(":", 2)
    return parts[1] if len(parts) == 3 else None
