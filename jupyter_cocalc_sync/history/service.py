"""``HistoryService``: jupyter-collaboration's timeline and forks, served from the change log.

* **Timeline** (the status bar's slider): ``timeline`` makes a read-only fork of the notebook
  and lists its steps (``timeline.py``); ``move`` shows an older or newer step in that fork;
  ``restore`` commits the step shown as a new version of the notebook — a revert by the user
  who restored, that every collaborator sees at once. The fork's items reach the notebook in
  the same commit (``NotebookFork.changes_for``), so the tab that restores, which moves its
  document back from the fork's room into the notebook's, duplicates nothing.
* **Forks** (suggestions, reviews): ``create_fork`` copies the notebook into a room that takes
  edits (optionally following the notebook's own changes); ``delete_fork`` drops it, or merges
  its edits into the notebook first, as a commit by the user who merged.

Forks live in memory and hold their notebook open. A timeline's fork closes once its last
client has left it for ``cleanup_delay`` seconds, or ``IDLE_SECONDS`` after it was made or
last moved while nobody is in it; of a notebook's timelines with nobody in them the newest
``MAX_UNATTENDED`` are kept. A fork made by ``create_fork`` lives until it is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DocumentNotFoundError, InvalidRequestError
from .forks import ForkInfo, NotebookFork, apply_patch, made_for, patch_to, table_copy
from .timeline import BURST_SECONDS, Step, timeline_steps

if TYPE_CHECKING:
    from ..documents.manager import DocumentManager
    from ..documents.notebook import NotebookDocument
    from ..execution.open_notebook import NotebookFactory
    from ..origin import Origin
    from ..transport.room import Peer, Room

log = logging.getLogger(__name__)

#: seconds a timeline's fork with no client stays after it was made or last moved
IDLE_SECONDS = 120.0
#: timelines of one notebook with no client kept at once: a new one closes the oldest (each
#: holds a copy of the notebook; a client asking for timelines in a loop costs no more)
MAX_UNATTENDED = 8
NOTEBOOK_ROOM = "json:notebook:"

#: ``emit(event)``: a fork was created or deleted (jupyter-collaboration's fork event)
ForkEmitter = Callable[[dict[str, Any]], None]


class ForkNotFoundError(DocumentNotFoundError):
    """No fork (or timeline) with that room id."""


@dataclass
class Timeline:
    """A timeline's fork and where its slider is."""

    fork: NotebookFork
    steps: list[Step]
    #: the step asked for, and the step the fork shows (they differ while a move runs)
    index: int
    shown: int
    #: the version the fork shows
    shown_version: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    restored: bool = False


class HistoryService:
    """Timelines and forks of the open notebooks (module docstring)."""

    def __init__(
        self,
        documents: DocumentManager,
        notebooks: NotebookFactory,
        *,
        check_path: Callable[[str], str],
        cleanup_delay: float,
        burst_seconds: float = BURST_SECONDS,
        emit: ForkEmitter | None = None,
    ) -> None:
        self.documents = documents
        self.notebooks = notebooks
        self.check_path = check_path
        self.cleanup_delay = cleanup_delay
        self.burst_seconds = burst_seconds
        self.emit = emit
        self.timelines: dict[str, Timeline] = {}
        self.forks: dict[str, NotebookFork] = {}
        self._cleaners: dict[str, asyncio.TimerHandle] = {}

    # -- the timeline -----------------------------------------------------------------------

    async def timeline(self, document: NotebookDocument) -> dict[str, Any]:
        """A new timeline of ``document``: jupyter-collaboration's answer, plus the version
        and the authors of each step."""
        steps = timeline_steps(await document.history(), self.burst_seconds)
        unattended = [
            room_id
            for room_id, timeline in self.timelines.items()
            if timeline.fork.document is document and not timeline.fork.room.peers
        ]
        for room_id in unattended[: max(0, len(unattended) - MAX_UNATTENDED + 1)]:
            self._close_room(room_id)  # the oldest first (dicts keep their order)
        fork = await self._fork(document, ForkInfo(_root_room(document)), writable=False)
        last = len(steps) - 1
        self.timelines[fork.room_id] = Timeline(fork, steps, last, last, steps[-1].version)
        self._schedule_close(fork.room_id, IDLE_SECONDS)
        return {
            "roomId": fork.info.root_roomid,
            "timestamps": [step.time for step in steps],
            "forkRoom": fork.room_id,
            "sessionId": document.session_id,
            "versions": [step.version for step in steps],
            "authors": [list(step.authors) for step in steps],
        }

    async def move(self, root_room: str, fork_room: str, action: str, steps: int) -> dict[str, Any]:
        """Show ``steps`` steps older (``undo``) or newer (``redo``) in the timeline's fork."""
        if action not in ("undo", "redo"):
            raise InvalidRequestError('"action" must be undo, redo or restore')
        if steps < 0:
            raise InvalidRequestError('"steps" must be 0 or more')
        timeline = self._timeline(root_room, fork_room)
        if not timeline.fork.room.peers:  # a client stepping over REST keeps it open
            self._schedule_close(fork_room, IDLE_SECONDS)
        last = len(timeline.steps) - 1
        if action == "undo" and timeline.index == 0:
            return {"error": "No more undo operations available"}
        if action == "redo" and timeline.index == last:
            return {"error": "No more redo operations available"}
        delta = -steps if action == "undo" else steps
        timeline.index = min(max(timeline.index + delta, 0), last)
        async with timeline.lock:
            # moves asked while another ran are shown at once: the fork goes to the latest
            if timeline.shown != timeline.index and not timeline.restored:
                index = timeline.index
                fork = timeline.fork
                version = await retained(fork.document, timeline.steps[index].version)
                await fork.show(version)
                timeline.shown, timeline.shown_version = index, version
        step = timeline.steps[timeline.index]
        status = "undone" if action == "undo" else "redone"
        return {"status": status, "version": step.version, "timestamp": step.time}

    async def restore(self, root_room: str, fork_room: str, origin: Origin) -> int:
        """Commit the step the timeline's fork shows as a new version of the notebook, by
        ``origin``'s user; returns the notebook's new version."""
        timeline = self._timeline(root_room, fork_room)
        async with timeline.lock:
            if timeline.restored:
                raise ForkNotFoundError(f"the timeline {fork_room!r} was restored already")
            fork = timeline.fork
            document = fork.document
            version = await retained(document, timeline.shown_version)
            target = table_copy(document)
            try:
                apply_patch(target, *await patch_to(document, target, version))
                document.table.check_writable()
                update = fork.changes_for(target)
            finally:
                target.close()
            author = made_for(origin)
            fork.notebook.projection.apply_update(update, author)
            # what the YNotebook does not show (run times, the live state) as the revert has it
            new_version = await document.revert(version, author)
            timeline.restored = True
        if not fork.room.peers:
            self._schedule_close(fork_room, self.cleanup_delay)
        log.info("%s restored to version %d by %s", document.path, version, origin.user)
        return new_version

    def _timeline(self, root_room: str, fork_room: str) -> Timeline:
        timeline = self.timelines.get(fork_room)
        if timeline is None or timeline.restored:
            raise ForkNotFoundError(f"no timeline with fork room {fork_room!r}")
        if timeline.fork.info.root_roomid != root_room:
            raise ForkNotFoundError(f"{fork_room!r} is not a timeline of {root_room!r}")
        return timeline

    # -- forks ------------------------------------------------------------------------------

    async def create_fork(self, root_room: str, info: ForkInfo, username: str) -> NotebookFork:
        """A fork of the notebook of ``root_room`` that takes edits (module docstring)."""
        document = await self.document_of_room(root_room)
        fork = await self._fork(document, info, writable=True)
        self.forks[fork.room_id] = fork
        self._emit(username, fork, "create")
        return fork

    def forks_of(self, root_room: str) -> dict[str, dict[str, Any]]:
        return {
            room_id: fork.info.to_json()
            for room_id, fork in self.forks.items()
            if fork.info.root_roomid == root_room
        }

    async def delete_fork(self, fork_room: str, *, merge: bool, origin: Origin) -> None:
        """Drop a fork; with ``merge``, its edits are committed to the notebook first."""
        fork = self.forks.get(fork_room)
        if fork is None:
            raise ForkNotFoundError(f"no fork with room id {fork_room!r}")
        document = fork.document
        if merge:
            document.table.check_writable()
            fork.notebook.projection.apply_update(fork.changes_for(), made_for(origin))
            await document.table.durable()
        if self.forks.pop(fork_room, None) is fork:
            self._close(fork)
            self._emit(origin.user or "", fork, "delete")

    # -- rooms ------------------------------------------------------------------------------

    def enter(self, room_id: str, peer: Peer) -> tuple[Room, Callable[[], None]] | None:
        """Connect ``peer`` to the fork room ``room_id``: the room and how to leave it (None:
        no fork has that id)."""
        fork = self.forks.get(room_id)
        timeline = self.timelines.get(room_id)
        if timeline is not None:
            fork = timeline.fork
        if fork is None:
            return None
        self._cancel_close(room_id)
        fork.room.connect(peer)

        def leave() -> None:
            fork.room.disconnect(peer)
            if timeline is not None and not fork.room.peers:
                self._schedule_close(room_id, self.cleanup_delay)

        return fork.room, leave

    async def document_of_room(self, room_id: str) -> NotebookDocument:
        """The notebook of a room id ``json:notebook:<file_id>`` (its path checked)."""
        if not room_id.startswith(NOTEBOOK_ROOM):
            raise DocumentNotFoundError(f"{room_id!r} is not a notebook's room")
        file_id = room_id[len(NOTEBOOK_ROOM) :]
        self.check_path(self.documents.path_of(file_id))
        document = await self.documents.get_by_id(file_id)
        self.check_path(document.path)  # renamed while it opened
        return document

    async def close_all(self) -> None:
        for room_id in list(self.timelines) + list(self.forks):
            self._close_room(room_id)

    # -- lifetime ---------------------------------------------------------------------------

    async def _fork(
        self, document: NotebookDocument, info: ForkInfo, *, writable: bool
    ) -> NotebookFork:
        self.documents.hold(document)  # a fork keeps its notebook open
        try:
            notebook = self.notebooks.get(document.file_id)
            await notebook.ensure_projection()
            return NotebookFork(uuid.uuid4().hex, notebook, info, writable=writable)
        except BaseException:
            self.documents.release(document)
            raise

    def _close(self, fork: NotebookFork) -> None:
        self._cancel_close(fork.room_id)
        fork.close()
        self.documents.release(fork.document)

    def _close_room(self, room_id: str) -> None:
        self._cancel_close(room_id)
        timeline = self.timelines.pop(room_id, None)
        fork = timeline.fork if timeline is not None else self.forks.pop(room_id, None)
        if fork is not None:
            self._close(fork)

    def _schedule_close(self, room_id: str, delay: float) -> None:
        self._cancel_close(room_id)
        loop = asyncio.get_running_loop()
        self._cleaners[room_id] = loop.call_later(delay, self._close_room, room_id)

    def _cancel_close(self, room_id: str) -> None:
        handle = self._cleaners.pop(room_id, None)
        if handle is not None:
            handle.cancel()

    def _emit(self, username: str, fork: NotebookFork, action: str) -> None:
        if self.emit is not None:
            self.emit(
                {
                    "username": username,
                    "fork_roomid": fork.room_id,
                    "fork_info": fork.info.to_json(),
                    "action": action,
                }
            )


async def retained(document: NotebookDocument, version: int) -> int:
    """``version``, or the first version after it if it is no longer in the log (a run that
    ended since the timeline was made squashed it into its last version, which holds it)."""
    versions = [v.version for v in await document.history()]
    return next((v for v in versions if v >= version), versions[-1])


def _root_room(document: NotebookDocument) -> str:
    return f"{NOTEBOOK_ROOM}{document.file_id}"
