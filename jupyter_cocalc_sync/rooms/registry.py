"""``RoomRegistry``: which room a room id names, and joining it.

* ``syncdb:<file_id>`` (under ``/api/cocalc-sync/room/``): the notebook's SyncDB table;
* ``ipywidgets:<file_id>`` (there too): the notebook's widget table (widgets/session.py);
* ``json:notebook:<file_id>`` (under ``/api/collaboration/room/``): the YNotebook projection;
* ``<format>:<type>:<file_id>`` for other files: a plain ``jupyter_ydoc`` file room;
* a fork's room id (a timeline's or a fork's, ``history/``): the fork;
* anything else (``JupyterLab:globalAwareness``…): a transient room for awareness. Like stock
  jupyter-collaboration it answers the y-websocket sync (SyncStep1 gets a SyncStep2 of its empty
  document, so the frontend's provider reports synced); document updates sent to it are
  dropped, it keeps nothing.

Joining a document room checks the client's ``sessionId`` the way jupyter-collaboration does:
a client that holds Yjs state of an earlier load of the document must reload instead of merging
it, or its cells would be duplicated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycrdt import Doc

from ..documents.manager import DocumentManager
from ..documents.text import FileRooms
from ..errors import CocalcSyncError, DocumentNotFoundError
from ..execution.open_notebook import NotebookFactory
from ..origin import Origin
from ..transport.room import Peer, Room
from ..widgets.session import ROOM_PREFIX as WIDGETS_PREFIX

if TYPE_CHECKING:
    from ..documents.notebook import NotebookDocument
    from ..history.service import HistoryService

SYNCDB_PREFIX = "syncdb:"
#: JupyterLab's room for who is where (its collaborators panel lists the states in it)
GLOBAL_AWARENESS = "JupyterLab:globalAwareness"


class SessionExpiredError(CocalcSyncError):
    """The client's ``sessionId`` belongs to an earlier load of the document."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} is not the current session of this document")
        self.session_id = session_id


@dataclass
class Membership:
    room: Room
    leave: Callable[[], None]


class GlobalAwareness:
    """The server's entries in JupyterLab's global awareness room (its collaborators panel
    lists them): kept while no JupyterLab window is connected, and given to the room made when
    the next one connects (``CollaboratorsPanel`` of execution/activity.py)."""

    def __init__(self) -> None:
        #: client id -> state
        self.entries: dict[int, dict[str, Any]] = {}
        self._room: Room | None = None

    def show_in_global_awareness(self, client_id: int, state: dict[str, Any] | None) -> None:
        """Keep (None: remove) an entry of the server in JupyterLab's global awareness room —
        now, and in the room made when the next JupyterLab window connects."""
        if state is None:
            self.entries.pop(client_id, None)
        else:
            self.entries[client_id] = state
        if self._room is not None:
            self._room.set_server_entry(client_id, state)

    def opened(self, room: Room) -> None:
        """The global awareness room was made (a JupyterLab window connected)."""
        self._room = room
        for client_id, state in self.entries.items():
            room.set_server_entry(client_id, state)

    def closed(self, room: Room) -> None:
        if self._room is room:
            self._room = None


class RoomRegistry:
    """Finds or creates the room for a room id and adds a peer to it."""

    def __init__(
        self,
        documents: DocumentManager,
        notebooks: NotebookFactory,
        files: FileRooms,
        check_path: Callable[[str], str],
        awareness: GlobalAwareness,
        history: HistoryService | None = None,
    ) -> None:
        self.documents = documents
        self.notebooks = notebooks
        self.files = files
        self.check_path = check_path
        self.awareness = awareness
        #: the forks' rooms
        self.history = history
        self.transient: dict[str, Room] = {}

    async def join(
        self, namespace: str, room_id: str, peer: Peer, session_id: str | None
    ) -> Membership:
        """Join ``room_id`` in ``namespace`` (``"cocalc"`` or ``"collaboration"``)."""
        if namespace == "cocalc":
            if room_id.startswith(SYNCDB_PREFIX):
                document = await self._open_checked(room_id[len(SYNCDB_PREFIX) :])
                room = self.notebooks.get(document.file_id).room("syncdb")
                return self._enter_document(document, room, peer)
            if room_id.startswith(WIDGETS_PREFIX):
                document = await self._open_checked(room_id[len(WIDGETS_PREFIX) :])
                room = self.notebooks.get(document.file_id).room("widgets")
                return self._enter_document(document, room, peer)
            raise DocumentNotFoundError(f"unknown room {room_id!r}")
        parts = room_id.split(":", 2)
        if len(parts) < 3:
            entered = self.history.enter(room_id, peer) if self.history is not None else None
            if entered is not None:
                return Membership(*entered)
            return self._enter_transient(room_id, peer)
        file_format, file_type, file_id = parts
        if file_type == "notebook":
            document = await self._open_checked(file_id)
            self._check_session(document.session_id, session_id)
            notebook = self.notebooks.get(document.file_id)
            self.documents.hold(document)  # not cleaned up while its YNotebook loads
            try:
                await notebook.ensure_projection()
            finally:
                self.documents.release(document)
            return self._enter_document(document, notebook.room("notebook"), peer)
        path = self.check_path(self.documents.path_of(file_id))
        file_document = await self.files.get(path, file_id, file_format, file_type)
        self._check_session(file_document.session_id, session_id)
        self.files.connect(file_document, peer)
        file_document.room.connect(peer)

        def leave() -> None:
            file_document.room.disconnect(peer)
            self.files.disconnect(file_document, peer)

        return Membership(file_document.room, leave)

    async def _open_checked(self, file_id: str) -> NotebookDocument:
        """The notebook of ``file_id``, its path checked before it is loaded (a file id can
        name a file that has left the root since, through a rename or a link)."""
        self.check_path(self.documents.path_of(file_id))
        document = await self.documents.get_by_id(file_id)
        self.check_path(document.path)  # renamed while it opened
        return document

    @staticmethod
    def _check_session(current: str, given: str | None) -> None:
        if given and given != current:
            raise SessionExpiredError(given)

    def _enter_document(self, document: NotebookDocument, room: Room, peer: Peer) -> Membership:
        self.documents.connect(document, peer)
        room.connect(peer)

        def leave() -> None:
            room.disconnect(peer)
            self.documents.disconnect(document, peer)

        return Membership(room, leave)

    def _enter_transient(self, room_id: str, peer: Peer) -> Membership:
        room = self.transient.get(room_id)
        if room is None:
            room = self.transient[room_id] = Room(room_id, Doc(), apply_update=_drop_update)
            if room_id == GLOBAL_AWARENESS:
                self.awareness.opened(room)
        room.connect(peer)

        def leave() -> None:
            room.disconnect(peer)
            if not room.peers:
                self.transient.pop(room_id, None)
                if room_id == GLOBAL_AWARENESS:
                    self.awareness.closed(room)

        return Membership(room, leave)


def _drop_update(update: bytes, origin: Origin) -> None:
    """Transient rooms relay awareness only: their document stays empty."""
