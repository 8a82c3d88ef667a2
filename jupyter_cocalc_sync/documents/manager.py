"""``DocumentManager``: one live document per open notebook, opened on first use.

Documents are keyed by the file id of ``jupyter-server-fileid`` (so a renamed notebook keeps its
history) and closed ``document_cleanup_delay`` seconds after their last client left or their
last use (a REST call), once nothing keeps them busy (a running cell registers itself with
``hold``).

Each file id goes through one lifecycle: ``opening → open → closing → closed``. A request that
arrives while a document opens waits for that opening; one that arrives while it closes waits
until the close (its final save) is over and then opens a fresh copy, so there are never two
live copies of a notebook, and never two writers of its file. Every task the manager starts is
kept and awaited (``close_all``).

What an open notebook is (its document, rooms, runner…) is built by the ``open_notebook``
function the manager is given (execution/open_notebook.py), which also closes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from tornado.web import HTTPError

from ..errors import DocumentNotFoundError, PathOutsideRootError
from ..errors_seen import count_error
from .filesync import Contents
from .notebook import NotebookDocument

if TYPE_CHECKING:
    from jupyter_server_fileid.manager import BaseFileIdManager

    from ..transport.room import Peer

log = logging.getLogger(__name__)


class DocumentState(StrEnum):
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class OpenedNotebook(Protocol):
    """An open notebook as the lifecycle sees it: its document, and how it is closed."""

    @property
    def document(self) -> NotebookDocument: ...

    def renamed(self, path: str) -> None:
        """The file was renamed through the server."""

    async def close(self) -> None:
        """Close everything the notebook is (the document's final save included)."""


#: ``open_notebook(path, file_id, manager)``: the open notebook of a file, loaded (the manager
#: keeps it open while it is held: ``hold``/``release``)
OpenNotebookFn = Callable[[str, str, "DocumentManager"], Awaitable[OpenedNotebook]]


class DocumentManager:
    """Opens, finds and closes notebook documents."""

    def __init__(
        self,
        *,
        contents_manager: Contents,
        file_id_manager: Callable[[], BaseFileIdManager],
        cleanup_delay: float,
        open_notebook: OpenNotebookFn,
    ) -> None:
        self.contents_manager = contents_manager
        self._file_ids = file_id_manager
        self.cleanup_delay = cleanup_delay
        self._open_notebook = open_notebook
        self.documents: dict[str, NotebookDocument] = {}
        #: what each open document is part of (its rooms, its runner…), which closes it
        self._opened: dict[str, OpenedNotebook] = {}
        self._opening: dict[str, asyncio.Future[NotebookDocument]] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._holds: dict[str, int] = {}
        self._cleaners: dict[str, asyncio.TimerHandle] = {}

    @property
    def file_id_manager(self) -> BaseFileIdManager:
        return self._file_ids()

    def file_id(self, path: str, *, create: bool = True) -> str:
        """The file id of ``path`` (indexed on first use); ``DocumentNotFoundError`` if none."""
        manager = self.file_id_manager
        file_id = manager.get_id(path)
        if file_id is None and create:
            file_id = manager.index(path)
        if file_id is None:
            raise DocumentNotFoundError(f"no file at {path!r}")
        return file_id

    def path_of(self, file_id: str) -> str:
        document = self.documents.get(file_id)
        if document is not None:
            return document.path
        path = self.file_id_manager.get_path(file_id)
        if path is None:
            raise DocumentNotFoundError(f"no file with id {file_id!r}")
        return path

    def state(self, file_id: str) -> DocumentState:
        if file_id in self._closing:
            return DocumentState.CLOSING
        if file_id in self.documents:
            return DocumentState.OPEN
        if file_id in self._opening:
            return DocumentState.OPENING
        return DocumentState.CLOSED

    async def get(self, path: str) -> NotebookDocument:
        """The live document of the notebook at ``path`` (an API path), opening it if needed."""
        if not path.endswith(".ipynb"):
            raise DocumentNotFoundError(f"{path!r} is not a notebook (.ipynb)")
        if not await _exists(self.contents_manager, path):
            # a notebook whose file was deleted stays usable while it is open
            for document in self.documents.values():
                if document.path == path:
                    return document
            raise DocumentNotFoundError(f"no notebook at {path!r}")
        return await self.get_by_id(self.file_id(path))

    async def get_by_id(self, file_id: str) -> NotebookDocument:
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
            return await self._open(file_id)

    async def _open(self, file_id: str) -> NotebookDocument:
        future: asyncio.Future[NotebookDocument] = asyncio.get_running_loop().create_future()
        self._opening[file_id] = future
        try:
            path = self.path_of(file_id)
            if not path.endswith(".ipynb"):
                raise DocumentNotFoundError(f"file {file_id!r} is not a notebook")
            opened = await self._open_notebook(path, file_id, self)
            document = opened.document
            self.documents[file_id] = document
            self._opened[file_id] = opened
            future.set_result(document)
            self._schedule_cleanup(file_id)
            log.info("opened %s (%s) at version %s", path, file_id, document.version)
            return document
        except BaseException as e:  # (re-raised: the waiters for this open get it too)
            future.set_exception(e)
            future.exception()  # retrieved: waiters get it re-raised
            raise
        finally:
            self._opening.pop(file_id, None)

    # -- lifetime ---------------------------------------------------------------------------

    def connect(self, document: NotebookDocument, client: Peer) -> None:
        document.clients.add(client)
        self._cancel_cleanup(document.file_id)

    def disconnect(self, document: NotebookDocument, client: Peer) -> None:
        document.clients.discard(client)
        self._schedule_cleanup(document.file_id)

    def hold(self, document: NotebookDocument) -> None:
        """Keep ``document`` open whatever its clients do (until ``release``)."""
        self._holds[document.file_id] = self._holds.get(document.file_id, 0) + 1
        self._cancel_cleanup(document.file_id)

    def release(self, document: NotebookDocument) -> None:
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
            or document.write_error is not None  # its unsaved changes wait for the store
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

    async def _close(self, document: NotebookDocument) -> None:
        try:
            opened = self._opened.pop(document.file_id, None)
            await (opened.close() if opened is not None else document.close())
        except Exception as e:  # the manager forgets it all the same (the log keeps it all)
            count_error("document.close", e, f"closing {document.path}", logger=log)
        finally:
            self._closing.pop(document.file_id, None)

    async def close_all(self) -> None:
        for file_id in list(self.documents):
            self.close_document(file_id)
        await asyncio.gather(*self._closing.values(), return_exceptions=True)

    # -- the files --------------------------------------------------------------------------

    def _under(self, path: str) -> list[NotebookDocument]:
        prefix = path.rstrip("/") + "/"
        return [d for d in self.documents.values() if d.path == path or d.path.startswith(prefix)]

    def renamed(self, old_path: str, new_path: str) -> None:
        """A file (or folder) was renamed through the server: open documents follow it."""
        for document in self._under(old_path):
            path = new_path + document.path[len(old_path) :]
            opened = self._opened.get(document.file_id)
            if opened is not None:
                opened.renamed(path)
            else:
                document.set_path(path)
            document.files.deleted = None  # in case polling saw the old path gone first
            document.files.changed()  # edits a save skipped meanwhile go to the new path

    def deleted(self, path: str) -> None:
        """A file (or folder) was deleted through the server: its documents do not save."""
        for document in self._under(path):
            document.files.deleted_now()


async def _exists(contents_manager: Contents, path: str) -> bool:
    from jupyter_server.utils import ensure_async

    try:
        return bool(await ensure_async(contents_manager.file_exists(path)))
    except HTTPError as e:  # a contents manager may refuse paths outside its root
        raise PathOutsideRootError(e.log_message or str(e)) from None
