"""``DocumentManager``: one live document per open notebook, opened on first use.

Documents are keyed by the file id of ``jupyter-server-fileid`` (so a renamed notebook keeps its
history) and closed ``document_cleanup_delay`` seconds after their last client left or their
last use (a REST call), once nothing keeps them busy (a running cell registers itself with
``hold``).

The lifecycle (``opening → open → closing → closed``, one live copy, holds, the cleanup delay,
renames and deletions) is ``LiveDocuments``'s, shared with plain files (``lifecycle.py``).

What an open notebook is (its document, rooms, runner…) is built by the ``open_notebook``
function the manager is given (execution/open_notebook.py), which also closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from tornado.web import HTTPError

from ..errors import DocumentNotFoundError, PathOutsideRootError
from ..heap import release_freed_memory_soon
from .following import Contents
from .lifecycle import LiveDocuments
from .notebook import NotebookDocument

if TYPE_CHECKING:
    from jupyter_server_fileid.manager import BaseFileIdManager

log = logging.getLogger(__name__)

#: a notebook whose opening read at least this many characters of file text hands the memory
#: the import freed back to the operating system (``heap``); a small one is not worth the walk
RELEASE_AFTER_READING = 1_000_000


class OpenedNotebook(Protocol):
    """An open notebook as the lifecycle sees it: its document, and how it is closed."""

    @property
    def document(self) -> NotebookDocument: ...

    def renamed(self, path: str) -> None:
        """The file was renamed through the server."""

    async def ensure_projection(self) -> object:
        """Build (or restore) the notebook's YNotebook for JupyterLab."""

    async def close(self) -> None:
        """Close everything the notebook is (the document's final save included)."""


#: ``open_notebook(path, file_id, manager, ynotebook)``: the open notebook of a file, loaded (the
#: manager keeps it open while it is held: ``hold``/``release``; ``ynotebook``: a JupyterLab
#: client is coming)
OpenNotebookFn = Callable[[str, str, "DocumentManager", bool], Awaitable[OpenedNotebook]]


class DocumentManager(LiveDocuments[NotebookDocument]):
    """Opens, finds and closes notebook documents."""

    def __init__(
        self,
        *,
        contents_manager: Contents,
        file_id_manager: Callable[[], BaseFileIdManager],
        cleanup_delay: float,
        open_notebook: OpenNotebookFn,
    ) -> None:
        super().__init__(cleanup_delay=cleanup_delay)
        self.contents_manager = contents_manager
        self._file_ids = file_id_manager
        self._open_notebook = open_notebook
        #: what each open document is part of (its rooms, its runner…), which closes it
        self._opened: dict[str, OpenedNotebook] = {}

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

    async def get(self, path: str, *, ynotebook: bool = False) -> NotebookDocument:
        """The live document of the notebook at ``path`` (an API path), opening it if needed
        (``ynotebook``: a JupyterLab client is coming, see ``get_by_id``)."""
        if not path.endswith(".ipynb"):
            raise DocumentNotFoundError(f"{path!r} is not a notebook (.ipynb)")
        if not await _exists(self.contents_manager, path):
            # a notebook whose file was deleted stays usable while it is open
            for document in self.documents.values():
                if document.path == path:
                    return document
            raise DocumentNotFoundError(f"no notebook at {path!r}")
        return await self.get_by_id(self.file_id(path), ynotebook=ynotebook)

    async def get_by_id(self, file_id: str, *, ynotebook: bool = False) -> NotebookDocument:
        """The live document of ``file_id``, opening it if needed. ``ynotebook``: a JupyterLab
        client is coming, so a notebook opened now gets its YNotebook at once, built from the
        records just read from the file (rather than read back from the table) while their
        log write is under way."""
        return await self.open(file_id, lambda: self._load(file_id, ynotebook))

    async def _load(self, file_id: str, ynotebook: bool) -> NotebookDocument:
        path = self.path_of(file_id)
        if not path.endswith(".ipynb"):
            raise DocumentNotFoundError(f"file {file_id!r} is not a notebook")
        opened = await self._open_notebook(path, file_id, self, ynotebook)
        document = opened.document
        try:
            if ynotebook:
                await opened.ensure_projection()
        except BaseException:  # (cancelled too: nothing else would close what was opened)
            await opened.close()
            raise
        finally:
            document.drop_ynotebook()  # (taken by ``ensure_projection``, unless it failed)
        if document.opening_read >= RELEASE_AFTER_READING:
            # what parsing and converting the file took is free now, most of it in worker
            # threads' arenas: without this the server keeps the import's peak resident (given
            # back once the opens of a burst are over: each reuses what the last one freed)
            release_freed_memory_soon()
        self._opened[file_id] = opened
        log.info("opened %s (%s) at version %s", path, file_id, document.version)
        return document

    async def _close_one(self, document: NotebookDocument) -> None:
        opened = self._opened.pop(document.file_id, None)
        await (opened.close() if opened is not None else document.close())

    def _rename_one(self, document: NotebookDocument, path: str) -> None:
        opened = self._opened.get(document.file_id)
        if opened is not None:
            opened.renamed(path)
        else:
            document.renamed(path)


async def _exists(contents_manager: Contents, path: str) -> bool:
    from jupyter_server.utils import ensure_async

    try:
        return bool(await ensure_async(contents_manager.file_exists(path)))
    except HTTPError as e:  # a contents manager may refuse paths outside its root
        raise PathOutsideRootError(e.log_message or str(e)) from None
