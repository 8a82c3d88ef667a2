"""Rooms for files that are not notebooks (``text:file:<id>``, ``base64:file:<id>``).

This extension replaces ``jupyter_server_ydoc``, whose routes the stock frontend also uses to
open ``.py``, ``.md`` or ``.json`` files collaboratively. They are served the way the stock
server does: the file is loaded into a ``jupyter_ydoc`` document and saved through the
ContentsManager after changes. They have no change log: only notebooks are SyncDB tables.
Like notebooks, they follow their file (``following.py``: debounced saves, polling, renames,
deletion); what differs is their ``FileFormat``, ``PlainFile``:

* a file whose content is what was last loaded or saved (``touch``) changes nothing;
* a changed text file is merged line-wise into the live text (``merge3``: live edits win where
  both changed the same lines); another format takes the file's content unless it was edited
  live;
* what brings a deleted file back is any edit of its content.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from jupyter_ydoc import ydocs
from pycrdt import Doc, TransactionEvent

from ..errors import DocumentNotFoundError
from ..errors_seen import count_error
from ..format.merge import merge_text
from ..origin import Origin
from ..transport.protocol import Message
from ..transport.room import Peer, Room
from .following import Contents, FileAccess, FileFollower, Snapshot, Stamp, stamp_of
from .lifecycle import LiveDocuments

log = logging.getLogger(__name__)

#: a file's content: text (``YUnicode``, ``YFile``) or bytes (``YBlob``)
FileContent = str | bytes
#: ``merge(base, disk, live)``: the live content after the file went from ``base`` to ``disk``
Merge = Callable[[FileContent, FileContent, FileContent], FileContent]


def merge_lines(base: FileContent, disk: FileContent, live: FileContent) -> FileContent:
    """Text: a line-wise three-way merge (live edits win where both changed the same lines)."""
    if isinstance(base, str) and isinstance(disk, str) and isinstance(live, str):
        return merge_text(base, disk, live)
    return take_the_file(base, disk, live)


def take_the_file(base: FileContent, disk: FileContent, live: FileContent) -> FileContent:
    """Other formats: the file's content, unless the live copy was edited since the save."""
    return disk if live == base else live


class PlainFile:
    """A plain file's ``FileFormat``: its snapshots carry the content they save."""

    def __init__(
        self, document: FileDocument, file: FileAccess, file_format: str, merge: Merge
    ) -> None:
        self.document = document
        self.file = file
        self.format = file_format
        self.merge_content = merge
        #: the file's content as last loaded or saved: the base of merges
        self.saved_content: FileContent | None = None

    async def read(self) -> tuple[FileContent, Stamp] | None:
        model = await self.file.read(self.format)
        return None if model is None else (model["content"], stamp_of(model))

    async def unsaved(self) -> bool:
        unsaved = bool(self.document.ydoc.get() != self.saved_content)
        self.document.ydoc.dirty = unsaved  # (edits undone: clean again)
        return unsaved

    async def snapshot(self) -> Snapshot[FileContent]:
        content: FileContent = self.document.ydoc.get()
        model = {"type": "file", "format": self.format, "content": content}
        return Snapshot(model, content)

    async def saved(self, snapshot: Snapshot[FileContent], stamp: Stamp) -> None:
        self.saved_content = snapshot.state
        self.document.ydoc.dirty = False

    def edits(self) -> FileContent:
        content: FileContent = self.document.ydoc.get()
        return content

    async def edits_at_save(self) -> FileContent | None:
        return self.saved_content

    async def merge(self, on_disk: Stamp) -> tuple[Stamp, bool]:
        read = await self.read()
        if read is None:
            return on_disk, False  # gone since: the next check sees it gone
        disk, stamp = read
        if disk == self.saved_content or self.saved_content is None:
            return stamp, False  # touched, or the same content written again
        live = self.edits()
        merged = self.merge_content(self.saved_content, disk, live)
        self.saved_content = disk
        if merged != live:
            log.info("merged out-of-band changes of %s", self.file.path)
            self.document.ydoc.set(merged)  # granular edits: cursors elsewhere stay put
        return stamp, merged != disk  # live edits on top of the file's new content


class FileDocument:
    """One open non-notebook file and its room."""

    def __init__(
        self,
        path: str,
        file_id: str,
        file_format: str,
        file_type: str,
        contents_manager: Contents,
        *,
        save_delay: float,
        poll_interval: float = 0.0,
    ) -> None:
        self.path = path
        self.file_id = file_id
        self.format = file_format
        self.type = file_type
        self.session_id = uuid.uuid4().hex
        self.doc: Doc[Any] = Doc()
        self.ydoc = ydocs.get(file_type, ydocs["file"])(self.doc)
        self.room = Room(
            f"{file_format}:{file_type}:{file_id}",
            self.doc,
            apply_update=self._apply,
            on_raw=self._on_raw,
        )
        self.clients: set[Peer] = set()
        file = FileAccess(contents_manager, lambda: self.path)
        merge = take_the_file if file_format == "base64" else merge_lines
        self.plain_file = PlainFile(self, file, file_format, merge)
        self.files: FileFollower[FileContent] = FileFollower(
            file, self.plain_file, autosave_delay=save_delay, poll_interval=poll_interval
        )
        self._origin: Origin | None = None  # the peer's whose update is being applied
        self.doc.observe(self._publish)

    @property
    def keeps_open(self) -> bool:
        """Nothing but its clients keeps a plain file open (``LiveDocument``)."""
        return False

    def _publish(self, event: TransactionEvent) -> None:
        self.room.publish(event.update, self._origin)

    async def open(self) -> None:
        read = await self.plain_file.read()
        if read is None:
            raise DocumentNotFoundError(f"no file at {self.path!r}")
        content, self.files.stamp = read
        # built in a Doc with client id 0 so the same file always gives the same history
        source: Doc[Any] = Doc(client_id=0)
        ydocs.get(self.type, ydocs["file"])(source).set(content)
        self.doc.apply_update(source.get_update())
        self.plain_file.saved_content = content
        self.files.start_polling()

    def _apply(self, update: bytes, origin: Origin) -> None:
        self._origin = origin
        try:
            self.doc.apply_update(update)
        finally:
            self._origin = None
        self.ydoc.dirty = True
        self.files.changed()

    async def save(self) -> str:
        return await self.files.save()

    def renamed(self, path: str) -> None:
        """The file was renamed through the server (``LiveDocument``)."""
        self.path = path
        self.files.moved()

    def deleted_now(self) -> None:
        """The file was deleted through the server (``LiveDocument``)."""
        self.files.deleted_now()

    async def _on_raw(self, peer: Peer, message: Message) -> dict[str, Any] | None:
        if message.raw != "save":
            return None
        status = await self.files.save()
        if status == "skipped":  # the file is up to date (the stock frontend shows "skipped"
            status = "success"  # as an error)
        return {"type": "save", "responseTo": message.raw_id, "status": status}

    async def close(self) -> None:
        self.room.close()
        await self.files.close(save=True)


class FileRooms(LiveDocuments[FileDocument]):
    """The open non-notebook files, by file id (one live copy each, as for notebooks)."""

    def __init__(
        self,
        contents_manager: Contents,
        *,
        save_delay: float,
        cleanup_delay: float,
        poll_interval: float = 0.0,
    ) -> None:
        super().__init__(
            cleanup_delay=cleanup_delay, on_opened=lambda d: self._tell("initialize", d)
        )
        self.contents_manager = contents_manager
        self.save_delay = save_delay
        self.poll_interval = poll_interval
        #: told ``(action, document)`` as a file's room opens (``"initialize"``) and closes
        #: (``"clean"``)
        self.lifecycle: list[Callable[[str, FileDocument], None]] = []

    async def get(self, path: str, file_id: str, file_format: str, file_type: str) -> FileDocument:
        async def make() -> FileDocument:
            document = FileDocument(
                path,
                file_id,
                file_format,
                file_type,
                self.contents_manager,
                save_delay=self.save_delay,
                poll_interval=self.poll_interval,
            )
            await document.open()
            return document

        return await self.open(file_id, make)

    def close_document(self, file_id: str) -> asyncio.Task[None] | None:
        document = self.documents.get(file_id)
        if document is not None:
            self._tell("clean", document)
        return super().close_document(file_id)

    def _tell(self, action: str, document: FileDocument) -> None:
        for listener in list(self.lifecycle):
            try:
                listener(action, document)
            except Exception as e:  # (a listener's bug must not keep the file from its room)
                what = f"{action} of {document.path}"
                count_error("file.lifecycle_listener", e, what, logger=log)
