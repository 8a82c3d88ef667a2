"""``NotebookFork``: a copy of a notebook's YNotebook, in a room of its own.

A fork has a table of its own (a ``SyncDB`` started as a copy of the notebook's) and a
YNotebook projection of that table whose Yjs items *are the notebook's*: its YNotebook starts
as the state of the notebook's. A JupyterLab tab that moves its document from the notebook's
room into the fork's (the stock timeline slider does) receives only what differs, and one that
moves back merges without duplicating a cell or a character: every item it got from the fork
is in the notebook by then (``changes_for``).

A fork shows a version (``show``: the table is patched to it, and the projection writes the
difference into the YNotebook) or, when writable, takes its peers' edits like the notebook's
own room does, checked by the same guard; a synchronized fork also takes the notebook's
changes, each sent to its peers once the notebook's change log has it. A fork lives in memory,
as stock's forks do; nothing in it is the notebook's history until it is merged or restored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycrdt import merge_updates

from ..format.schema import notebook_syncdb
from ..format.states import revert_patch
from ..origin import SERVER, STORE, Origin, OriginKind
from ..permissions import Permissions
from ..sync.table import Record, SyncDB
from ..transport.protocol import Message
from ..transport.room import Peer, Room
from ..ynotebook.checks import ynotebook_guard
from ..ynotebook.projection import YNotebookProjection

if TYPE_CHECKING:
    from ..documents.notebook import NotebookDocument
    from ..execution.open_notebook import OpenNotebook

#: who merges or restores: a change made on their behalf (never a run request)
AUTHOR_PERMISSIONS = Permissions(write=True, execute=False)


def made_for(origin: Origin) -> Origin:
    """The origin of a change the server makes for a user (a merge, a restore): history
    records it under the user's name, like the user's own edits, and it asks for no run."""
    return Origin(OriginKind.USER, origin.user, AUTHOR_PERMISSIONS)


@dataclass
class ForkInfo:
    """What jupyter-collaboration says of a fork (``fork_info`` in its routes and events)."""

    root_roomid: str
    synchronize: bool = False
    title: str = ""
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "root_roomid": self.root_roomid,
            "synchronize": self.synchronize,
            "title": self.title,
            "description": self.description,
        }


class NotebookFork:
    """A copy of ``notebook``'s YNotebook served in room ``room_id`` (module docstring; the
    notebook's YNotebook is loaded)."""

    def __init__(
        self,
        room_id: str,
        notebook: OpenNotebook,
        info: ForkInfo,
        *,
        writable: bool,
    ) -> None:
        self.room_id = room_id
        self.notebook = notebook
        self.document = document = notebook.document
        self.info = info
        self.writable = writable
        self.db = table_copy(document)
        self.projection = copy_projection(document, self.db, notebook.projection.ydoc.get_update())
        self.room = Room(
            room_id,
            self.projection.ydoc,
            apply_update=self.projection.apply_update if writable else _drop_update,
            check_update=ynotebook_guard(self.projection.ydoc).check if writable else None,
            on_raw=_refuse_save,
        )
        self._unsubscribe: list[Callable[[], None]] = [self.projection.on_update(self._publish)]
        #: the notebook's changes a synchronized fork took, not yet durable in its log
        self._held: list[bytes] = []
        self._following = False
        self._settle_scheduled = False
        if info.synchronize:
            self._unsubscribe.append(notebook.projection.on_update(self._follow))
            self._unsubscribe.append(document.table.on_logged(self._on_logged))
        self.closed = False

    def _publish(self, update: bytes, origin: Origin) -> None:
        if self._following:
            self._held.append(update)
        else:
            self.room.publish(update, origin)

    # -- a synchronized fork ----------------------------------------------------------------
    #
    # It takes every change of the notebook's YNotebook as it happens, and its peers get it
    # once the notebook's change log holds it, as the notebook's own peers do: the change is
    # in the table's next log write, or in the latest one when nothing is left uncommitted.

    def _follow(self, update: bytes, origin: Origin) -> None:
        self._following = True
        try:
            self.projection.apply_update(update, origin)
        finally:
            self._following = False
        if not self._settle_scheduled:
            self._settle_scheduled = True
            asyncio.get_running_loop().call_soon(self._settle)

    def _settle(self) -> None:
        self._settle_scheduled = False
        if self._held and not self.document.db.has_uncommitted_changes:
            self._release(self.document.table.barrier())

    def _on_logged(self, update: bytes, origin: Origin, durable: asyncio.Future[int]) -> None:
        if self._held and not self.document.db.has_uncommitted_changes:
            self._release(durable)

    def _release(self, durable: asyncio.Future[int] | None) -> None:
        held, self._held = self._held, []
        for update in held:
            self.room.publish(update, None, durable)

    async def show(self, version: int) -> None:
        """Make the fork what the notebook was at ``version`` (``VersionNotFoundError``)."""
        sets, deletes = await patch_to(self.document, self.db, version)
        apply_patch(self.db, sets, deletes)

    def changes_for(self, target: SyncDB | None = None) -> bytes:
        """The update that makes the notebook's YNotebook hold every item of this fork — and,
        given ``target`` (a table), show that table: the fork's state is merged with the
        notebook's of now, made equal to ``target`` keeping every item it can, and the
        difference to the notebook's is returned."""
        main = self.notebook.projection.ydoc
        if target is None:
            return self.projection.ydoc.get_update(main.get_state())
        merged = merge_updates(self.projection.ydoc.get_update(), main.get_update())
        result = copy_projection(self.document, target, merged)
        try:
            result.reconcile()
            return result.ydoc.get_update(main.get_state())
        finally:
            result.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self.room.close(1001, "the fork was closed")
        self.projection.close()
        self.db.close()


def copy_projection(document: NotebookDocument, db: SyncDB, state: bytes) -> YNotebookProjection:
    """A projection of ``db`` over a YNotebook restored from ``state`` (not reconciled),
    rendering outputs as ``document``'s does."""
    hooks = document.hooks
    kwargs: dict[str, Any] = {"commit": db.commit, "state": state}
    if hooks.render_output is not None:
        kwargs["render_output"] = hooks.render_output
    if hooks.ingest_output is not None:
        kwargs["ingest_output"] = hooks.ingest_output
    return YNotebookProjection(db, **kwargs)


async def patch_to(
    document: NotebookDocument, db: SyncDB, version: int
) -> tuple[list[Record], list[Record]]:
    """``(sets, deletes)`` that make ``db`` what ``document`` was at ``version`` (cells keep
    the run state ``db`` has, as a revert does)."""
    await document.table.durable()
    old = await document.changelog.state_at(document.file_id, version)
    # comparing a whole notebook is CPU work: in the replay process, as a revert does it
    patch: tuple[list[Record], list[Record]] = await document.changelog.replay.run(
        revert_patch, db.get_update(), old
    )
    return patch


def apply_patch(db: SyncDB, sets: list[Record], deletes: list[Record]) -> None:
    """Patch a fork's own table (the server's change: a fork's table is never logged)."""
    with db.transaction(SERVER):
        for where in deletes:
            db.delete(where, SERVER)
        for record in sets:
            db.set(record, SERVER)
    db.commit(SERVER)


def table_copy(document: NotebookDocument) -> SyncDB:
    """A table holding what ``document``'s holds now."""
    db = notebook_syncdb()
    db.apply_update(document.db.get_update(), STORE)
    return db


async def _refuse_save(peer: Peer, message: Message) -> dict[str, Any] | None:
    """A fork is no file: a save asked in its room fails, as in stock's fork rooms (a tab
    looking at history that presses Ctrl+S is told, rather than left waiting)."""
    if message.raw != "save":
        return None
    return {"type": "save", "responseTo": message.raw_id, "status": "failed"}


def _drop_update(update: bytes, origin: Origin) -> None:
    """A fork that shows a version is read-only: its peers' edits are not kept."""
