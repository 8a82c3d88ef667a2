"""Rooms for files that are not notebooks (``text:file:<id>``, ``base64:file:<id>``).

This extension replaces ``jupyter_server_ydoc``, whose routes the stock frontend also uses to
open ``.py``, ``.md`` or ``.json`` files collaboratively. They are served the way the stock
server does: the file is loaded into a ``jupyter_ydoc`` document, saved through the
ContentsManager after changes, and reloaded when it changes on disk while nobody edited it.
They have no change log: only notebooks are SyncDB tables.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from jupyter_server.utils import ensure_async
from jupyter_ydoc import ydocs
from pycrdt import Doc
from tornado.web import HTTPError

from ..errors import DocumentNotFoundError
from .protocol import Message
from .room import Peer, Room

log = logging.getLogger(__name__)


class FileDocument:
    """One open non-notebook file and its room."""

    def __init__(
        self,
        path: str,
        file_id: str,
        file_format: str,
        file_type: str,
        contents_manager: Any,
        *,
        save_delay: float,
    ) -> None:
        self.path = path
        self.file_id = file_id
        self.format = file_format
        self.type = file_type
        self.contents_manager = contents_manager
        self.save_delay = save_delay
        self.session_id = uuid.uuid4().hex
        self.doc = Doc()
        self.ydoc = ydocs.get(file_type, ydocs["file"])(self.doc)
        self.room = Room(
            f"{file_format}:{file_type}:{file_id}",
            self.doc,
            apply_update=self._apply,
            on_raw=self._on_raw,
        )
        self.clients: set[Any] = set()
        self._save_task: asyncio.Task[str] | None = None
        self._origin: Any = None
        self.doc.observe(lambda event: self.room.publish(event.update, self._origin))

    async def open(self) -> None:
        try:
            model = await ensure_async(
                self.contents_manager.get(self.path, content=True, type="file", format=self.format)
            )
        except HTTPError as e:
            if e.status_code == 404:
                raise DocumentNotFoundError(f"no file at {self.path!r}") from None
            raise
        # built in a Doc with client id 0 so the same file always gives the same history
        source = Doc(client_id=0)
        ydocs.get(self.type, ydocs["file"])(source).set(model["content"])
        self.doc.apply_update(source.get_update())

    def _apply(self, update: bytes, peer: Peer) -> None:
        self._origin = peer
        try:
            self.doc.apply_update(update)
        finally:
            self._origin = None
        self.ydoc.dirty = True
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.get_running_loop().create_task(self._save_later())

    async def _save_later(self) -> str:
        await asyncio.sleep(self.save_delay)
        return await self.save()

    async def save(self) -> str:
        try:
            await ensure_async(
                self.contents_manager.save(
                    {
                        "type": "file",
                        "format": self.format,
                        "content": self.ydoc.get(),
                    },
                    self.path,
                )
            )
        except Exception:
            log.exception("saving %s failed", self.path)
            return "failed"
        self.ydoc.dirty = False
        return "success"

    async def _on_raw(self, peer: Peer, message: Message) -> dict[str, Any] | None:
        if message.raw != "save":
            return None
        status = await self.save()
        return {"type": "save", "responseTo": message.raw_id, "status": status}

    async def close(self) -> None:
        self.room.close()
        if self._save_task is not None and not self._save_task.done():
            self._save_task.cancel()
            await self.save()


class FileRooms:
    """The open non-notebook files, by file id."""

    def __init__(self, contents_manager: Any, *, save_delay: float, cleanup_delay: float) -> None:
        self.contents_manager = contents_manager
        self.save_delay = save_delay
        self.cleanup_delay = cleanup_delay
        self.documents: dict[str, FileDocument] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._cleaners: dict[str, asyncio.TimerHandle] = {}

    async def get(self, path: str, file_id: str, file_format: str, file_type: str) -> FileDocument:
        lock = self._locks.setdefault(file_id, asyncio.Lock())
        async with lock:
            document = self.documents.get(file_id)
            if document is None:
                document = FileDocument(
                    path,
                    file_id,
                    file_format,
                    file_type,
                    self.contents_manager,
                    save_delay=self.save_delay,
                )
                await document.open()
                self.documents[file_id] = document
                self._schedule_cleanup(file_id)
            return document

    def connect(self, document: FileDocument, client: Any) -> None:
        document.clients.add(client)
        handle = self._cleaners.pop(document.file_id, None)
        if handle is not None:
            handle.cancel()

    def disconnect(self, document: FileDocument, client: Any) -> None:
        document.clients.discard(client)
        self._schedule_cleanup(document.file_id)

    def _schedule_cleanup(self, file_id: str) -> None:
        document = self.documents.get(file_id)
        if document is None or document.clients:
            return
        loop = asyncio.get_running_loop()
        old = self._cleaners.pop(file_id, None)
        if old is not None:
            old.cancel()
        self._cleaners[file_id] = loop.call_later(
            self.cleanup_delay, lambda: loop.create_task(self._cleanup(file_id))
        )

    async def _cleanup(self, file_id: str) -> None:
        self._cleaners.pop(file_id, None)
        document = self.documents.get(file_id)
        if document is not None and not document.clients:
            del self.documents[file_id]
            await document.close()

    async def close_all(self) -> None:
        for handle in self._cleaners.values():
            handle.cancel()
        self._cleaners.clear()
        documents, self.documents = list(self.documents.values()), {}
        for document in documents:
            await document.close()
