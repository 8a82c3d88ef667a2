"""``LiveDocuments[T]``: the lifecycle of open documents, notebooks and plain files alike.

There is at most one live copy of a file, keyed by its file id (so a renamed file keeps its
document). Each key goes through ``opening → open → closing → closed``:

* a request that arrives while a document opens waits for that opening (concurrent opens are
  deduplicated: one document, one open);
* a request that arrives while it closes waits until the close (its final save) is over and
  then opens a fresh copy, so there are never two live copies of a file, and never two writers;
* a document closes ``cleanup_delay`` seconds after its last client left or its last use (a REST
  call), once nothing keeps it busy (``hold``/``release``, or the document itself: unsaved
  changes that wait for the store);
* renames and deletions through the server are passed to the documents under the path;
* every task started here is kept and awaited (``close_all``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ..errors_seen import count_error

if TYPE_CHECKING:
    from ..transport.room import Peer

log = logging.getLogger(__name__)


class DocumentState(StrEnum):
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class LiveDocument(Protocol):
    """What the lifecycle needs of a document."""

    @property
    def path(self) -> str: ...

    @property
    def file_id(self) -> str: ...

    @property
    def clients(self) -> set[Peer]: ...

    @property
    def keeps_open(self) -> bool:
        """Whether the document must stay open though nobody uses it."""

    def renamed(self, path: str) -> None:
        """The file (or a folder above it) was renamed through the server."""

    def deleted_now(self) -> None:
        """The file was deleted through the server just now."""

    async def close(self) -> None: ...


T = TypeVar("T", bound=LiveDocument)


class LiveDocuments(Generic[T]):
    """The open documents of one kind, by file id (module docstring)."""

    def __init__(
        self,
        *,
        cleanup_delay: float,
        on_opened: Callable[[T], None] | None = None,
        on_closed: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        self.cleanup_delay = cleanup_delay
        #: called once a document is open, before those waiting for it get it
        self.on_opened = on_opened
        #: awaited after a document closed (before a fresh copy may open)
        self.on_closed = on_closed
        self.documents: dict[str, T] = {}
        self._opening: dict[str, asyncio.Future[T]] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._holds: dict[str, int] = {}
        self._cleaners: dict[str, asyncio.TimerHandle] = {}

    def state(self, file_id: str) -> DocumentState:
        if file_id in self._closing:
            return DocumentState.CLOSING
        if file_id in self.documents:
            return DocumentState.OPEN
        if file_id in self._opening:
            return DocumentState.OPENING
        return DocumentState.CLOSED

    async def open(self, file_id: str, make: Callable[[], Awaitable[T]]) -> T:
        """The live document of ``file_id``; ``make()`` opens one if there is none."""
        while True:
            document = self.documents.get(file_id)
            if document is not None:
                self._schedule_cleanup(file_id)  # a use (a REST call) postpones the close
                return document
            closing = self._closing.get(file_id)
            if closing is not None:
                # the last copy is still saving: a fresh one opens after it is closed
                await asyncio.shield(closing)
                continue
            pending = self._opening.get(file_id)
            if pending is not None:
                return await asyncio.shield(pending)
            return await self._open(file_id, make)

    async def _open(self, file_id: str, make: Callable[[], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._opening[file_id] = future
        try:
            document = await make()
            self.documents[file_id] = document
            if self.on_opened is not None:
                self.on_opened(document)
            future.set_result(document)
            self._schedule_cleanup(file_id)
            return document
        except BaseException as e:  # (re-raised: the waiters for this open get it too)
            future.set_exception(e)
            future.exception()  # retrieved: waiters get it re-raised
            raise
        finally:
            self._opening.pop(file_id, None)

    # -- lifetime ---------------------------------------------------------------------------

    def connect(self, document: T, client: Peer) -> None:
        document.clients.add(client)
        self._cancel_cleanup(document.file_id)

    def disconnect(self, document: T, client: Peer) -> None:
        document.clients.discard(client)
        self._schedule_cleanup(document.file_id)

    def hold(self, document: T) -> None:
        """Keep ``document`` open whatever its clients do (until ``release``)."""
        self._holds[document.file_id] = self._holds.get(document.file_id, 0) + 1
        self._cancel_cleanup(document.file_id)

    def release(self, document: T) -> None:
        count = self._holds.get(document.file_id, 0) - 1
        if count <= 0:
            self._holds.pop(document.file_id, None)
            self._schedule_cleanup(document.file_id)
        else:
            self._holds[document.file_id] = count

    def _busy(self, file_id: str) -> bool:
        document = self.documents.get(file_id)
        return (
            document is None
            or bool(document.clients)
            or bool(self._holds.get(file_id))
            or document.keeps_open
        )

    def _cancel_cleanup(self, file_id: str) -> None:
        handle = self._cleaners.pop(file_id, None)
        if handle is not None:
            handle.cancel()

    def _schedule_cleanup(self, file_id: str) -> None:
        self._cancel_cleanup(file_id)
        if self._busy(file_id):
            return
        loop = asyncio.get_running_loop()
        self._cleaners[file_id] = loop.call_later(self.cleanup_delay, self._cleanup, file_id)

    def _cleanup(self, file_id: str) -> None:
        self._cleaners.pop(file_id, None)
        if self._busy(file_id):
            return
        log.info("closing %s: no clients for %ss", self.documents[file_id].path, self.cleanup_delay)
        self.close_document(file_id)

    def close_document(self, file_id: str) -> asyncio.Task[None] | None:
        """Start closing the open document ``file_id`` (the task is kept until it is closed)."""
        self._cancel_cleanup(file_id)
        document = self.documents.pop(file_id, None)
        if document is None:
            return self._closing.get(file_id)
        task = asyncio.get_running_loop().create_task(self._close(document))
        self._closing[file_id] = task
        return task

    async def _close(self, document: T) -> None:
        try:
            await self._close_one(document)
            if self.on_closed is not None:
                await self.on_closed(document)
        except Exception as e:  # forgotten all the same (a notebook's log keeps it all)
            count_error("document.close", e, f"closing {document.path}", logger=log)
        finally:
            self._closing.pop(document.file_id, None)

    async def _close_one(self, document: T) -> None:
        """Close one document (a subclass closes what the document is part of with it)."""
        await document.close()

    async def close_all(self) -> None:
        for file_id in list(self.documents):
            self.close_document(file_id)
        await asyncio.gather(*self._closing.values(), return_exceptions=True)

    # -- the files --------------------------------------------------------------------------

    def _under(self, path: str) -> list[T]:
        prefix = path.rstrip("/") + "/"
        return [d for d in self.documents.values() if d.path == path or d.path.startswith(prefix)]

    def renamed(self, old_path: str, new_path: str) -> None:
        """A file (or folder) was renamed through the server: open documents follow it."""
        for document in self._under(old_path):
            self._rename_one(document, new_path + document.path[len(old_path) :])

    def _rename_one(self, document: T, path: str) -> None:
        """Tell one document its new path (a subclass tells what it is part of too)."""
        document.renamed(path)

    def deleted(self, path: str) -> None:
        """A file (or folder) was deleted through the server: its documents do not save."""
        for document in self._under(path):
            document.deleted_now()
