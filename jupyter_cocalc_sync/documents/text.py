"""Rooms for files that are not notebooks (``text:file:<id>``, ``base64:file:<id>``).

This extension replaces ``jupyter_server_ydoc``, whose routes the stock frontend also uses to
open ``.py``, ``.md`` or ``.json`` files collaboratively. They are served the way the stock
server does: the file is loaded into a ``jupyter_ydoc`` document and saved through the
ContentsManager after changes. They have no change log: only notebooks are SyncDB tables.
Like notebooks, they follow the file:

* polled every ``file_poll_interval`` seconds: a file whose content is what was last loaded or
  saved (``touch``) changes nothing; a changed text file is merged line-wise into the live text
  (``merge3``: live edits win where both changed the same lines); another format takes the
  file's content unless it was edited live;
* renamed through the server: the room follows the new path;
* deleted: not recreated, not even when the room closes, unless the text is edited after the
  deletion (then it is, and the log says why).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from jupyter_server.utils import ensure_async
from jupyter_ydoc import ydocs
from pycrdt import Doc, TransactionEvent
from tornado.web import HTTPError

from ..errors import DocumentNotFoundError
from ..errors_seen import count_error
from ..format.merge import merge_text
from ..origin import Origin
from ..transport.protocol import Message
from ..transport.room import Peer, Room
from .filesync import Contents, ContentsModel, Stamp, poll_file, stamp_of

log = logging.getLogger(__name__)

#: a file's content: text (``YUnicode``, ``YFile``) or bytes (``YBlob``)
FileContent = str | bytes


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
        self.contents_manager = contents_manager
        self.save_delay = save_delay
        self.poll_interval = poll_interval
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
        #: the file's content as last loaded or saved: the base of merges
        self.saved: FileContent | None = None
        self.stamp: Stamp = (None, None)
        #: while the file is deleted: the content at the deletion
        self.deleted: FileContent | None = None
        self._lock = asyncio.Lock()
        self._save_task: asyncio.Task[str] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._origin: Origin | None = None  # the peer's whose update is being applied
        self.doc.observe(self._publish)

    def _publish(self, event: TransactionEvent) -> None:
        self.room.publish(event.update, self._origin)

    async def _get(self, content: bool) -> ContentsModel | None:
        try:
            return await ensure_async(
                self.contents_manager.get(
                    self.path,
                    content=content,
                    type="file",
                    format=self.format if content else None,
                )
            )
        except HTTPError as e:
            if e.status_code == 404:
                return None
            raise

    async def open(self) -> None:
        model = await self._get(content=True)
        if model is None:
            raise DocumentNotFoundError(f"no file at {self.path!r}")
        # built in a Doc with client id 0 so the same file always gives the same history
        source: Doc[Any] = Doc(client_id=0)
        ydocs.get(self.type, ydocs["file"])(source).set(model["content"])
        self.doc.apply_update(source.get_update())
        self.saved, self.stamp = model["content"], stamp_of(model)
        if self.poll_interval > 0:
            self._poller = asyncio.get_running_loop().create_task(
                poll_file(self.poll_interval, self.check, lambda: self.path)
            )

    def _apply(self, update: bytes, origin: Origin) -> None:
        self._origin = origin
        try:
            self.doc.apply_update(update)
        finally:
            self._origin = None
        self.ydoc.dirty = True
        self._save_soon()

    def _save_soon(self) -> None:
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.get_running_loop().create_task(self._save_later())

    async def _save_later(self) -> str:
        await asyncio.sleep(self.save_delay)
        return await self.save()

    async def save(self) -> str:
        async with self._lock:
            content = self.ydoc.get()
            model = await self._get(content=False)
            if model is None:
                if self.deleted is None:
                    self._gone(self.saved)
                if content == self.deleted:
                    return "success"  # deleted, and not edited since: stays deleted
                log.warning("recreating %s: it was edited after it was deleted", self.path)
            elif stamp_of(model) != self.stamp:
                await self._merge_locked()
                content = self.ydoc.get()
            if model is not None and content == self.saved:
                self.ydoc.dirty = False
                return "success"
            try:
                saved = await ensure_async(
                    self.contents_manager.save(
                        {"type": "file", "format": self.format, "content": content}, self.path
                    )
                )
            except (HTTPError, OSError) as e:  # refused (permissions, a full disk)
                log.error("saving %s failed: %s", self.path, e)
                return "failed"
            except Exception as e:  # a bug of ours, or of a contents manager
                count_error("file_room.save", e, f"saving {self.path}", logger=log)
                return "failed"
            self.saved, self.stamp, self.deleted = content, stamp_of(saved), None
        self.ydoc.dirty = False
        return "success"

    # -- out-of-band changes ----------------------------------------------------------------

    async def check(self) -> None:
        """Follow the file: deleted, back, or changed out of band (module docstring)."""
        if self._lock.locked():
            return  # a save is running and checks the file itself
        async with self._lock:
            model = await self._get(content=False)
            if model is None:
                if self.deleted is None:
                    # deleted at some time since the last save: edits since bring it back
                    self._gone(self.saved)
                return
            self.deleted = None
            if stamp_of(model) != self.stamp:
                await self._merge_locked()

    def deleted_now(self) -> None:
        """The contents API deleted the file just now: edits from now on bring it back."""
        self._gone(self.ydoc.get())

    def _gone(self, content: FileContent | None) -> None:
        self.deleted = content
        log.warning(
            "%s was deleted or moved: it is recreated only if it is edited again", self.path
        )

    def renamed(self, path: str) -> None:
        self.path, self.deleted = path, None
        if self.ydoc.get() != self.saved:
            self._save_soon()  # edits a save skipped meanwhile go to the new path

    async def _merge_locked(self) -> None:
        model = await self._get(content=True)
        if model is None:
            return
        disk, self.stamp = model["content"], stamp_of(model)
        if disk == self.saved:
            return  # touched, or the same content written again
        live = self.ydoc.get()
        base = self.saved
        if isinstance(base, str) and isinstance(disk, str) and isinstance(live, str):
            merged = merge_text(base, disk, live)
        else:
            merged = disk if live == self.saved else live
        self.saved = disk
        if merged != live:
            log.info("merged out-of-band changes of %s", self.path)
            self.ydoc.set(merged)  # granular edits: cursors elsewhere stay where they are
        if merged != disk:
            self._save_soon()  # live edits on top of the file's new content

    async def _on_raw(self, peer: Peer, message: Message) -> dict[str, Any] | None:
        if message.raw != "save":
            return None
        status = await self.save()
        return {"type": "save", "responseTo": message.raw_id, "status": status}

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._save_task is not None and not self._save_task.done():
            self._save_task.cancel()
            await asyncio.gather(self._save_task, return_exceptions=True)
        self.room.close()
        if self.ydoc.get() != self.saved:
            await self.save()


class FileRooms:
    """The open non-notebook files, by file id (one live copy each, as for notebooks)."""

    def __init__(
        self,
        contents_manager: Contents,
        *,
        save_delay: float,
        cleanup_delay: float,
        poll_interval: float = 0.0,
    ) -> None:
        self.contents_manager = contents_manager
        self.save_delay = save_delay
        self.cleanup_delay = cleanup_delay
        self.poll_interval = poll_interval
        self.documents: dict[str, FileDocument] = {}
        #: told ``(action, document)`` as a file's room opens (``"initialize"``) and closes
        #: (``"clean"``)
        self.lifecycle: list[Callable[[str, FileDocument], None]] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._cleaners: dict[str, asyncio.TimerHandle] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}

    async def get(self, path: str, file_id: str, file_format: str, file_type: str) -> FileDocument:
        lock = self._locks.setdefault(file_id, asyncio.Lock())
        async with lock:
            closing = self._closing.get(file_id)
            if closing is not None:  # the last copy is still saving
                await asyncio.shield(closing)
            document = self.documents.get(file_id)
            if document is None:
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
                self.documents[file_id] = document
                self._schedule_cleanup(file_id)
                self._tell("initialize", document)
            return document

    def _tell(self, action: str, document: FileDocument) -> None:
        for listener in list(self.lifecycle):
            try:
                listener(action, document)
            except Exception as e:  # (a listener's bug must not keep the file from its room)
                what = f"{action} of {document.path}"
                count_error("file.lifecycle_listener", e, what, logger=log)

    def connect(self, document: FileDocument, client: Peer) -> None:
        document.clients.add(client)
        handle = self._cleaners.pop(document.file_id, None)
        if handle is not None:
            handle.cancel()

    def disconnect(self, document: FileDocument, client: Peer) -> None:
        document.clients.discard(client)
        self._schedule_cleanup(document.file_id)

    def _schedule_cleanup(self, file_id: str) -> None:
        document = self.documents.get(file_id)
        if document is None or document.clients:
            return
        old = self._cleaners.pop(file_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._cleaners[file_id] = loop.call_later(self.cleanup_delay, self._cleanup, file_id)

    def _cleanup(self, file_id: str) -> None:
        self._cleaners.pop(file_id, None)
        document = self.documents.get(file_id)
        if document is not None and not document.clients:
            self._close(file_id)

    def _close(self, file_id: str) -> None:
        document = self.documents.pop(file_id)
        self._tell("clean", document)
        task = asyncio.get_running_loop().create_task(document.close())
        self._closing[file_id] = task
        task.add_done_callback(lambda _: self._closing.pop(file_id, None))

    def _under(self, path: str) -> list[FileDocument]:
        prefix = path.rstrip("/") + "/"
        return [d for d in self.documents.values() if d.path == path or d.path.startswith(prefix)]

    def renamed(self, old_path: str, new_path: str) -> None:
        """A file (or folder) was renamed through the server: open files follow it."""
        for document in self._under(old_path):
            document.renamed(new_path + document.path[len(old_path) :])

    def deleted(self, path: str) -> None:
        for document in self._under(path):
            document.deleted_now()

    async def close_all(self) -> None:
        for handle in self._cleaners.values():
            handle.cancel()
        self._cleaners.clear()
        for file_id in list(self.documents):
            self._close(file_id)
        await asyncio.gather(*self._closing.values(), return_exceptions=True)
