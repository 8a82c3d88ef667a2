"""``DocumentManager``: one live document per open notebook, opened on first use.

Documents are keyed by the file id of ``jupyter-server-fileid`` (so a renamed notebook keeps its
history) and closed ``document_cleanup_delay`` seconds after their last client left or their
last use (a REST call), once nothing keeps them busy (a running cell registers itself with
``hold``).

The lifecycle (``opening → open → closing → closed``, one live copy, holds, the cleanup delay,
renames and deletions) is ``LiveDocuments``'s, shared with plain files (``lifecycle.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tornado.web import HTTPError

from ..errors import DocumentNotFoundError, PathOutsideRootError
from ..outputs.hooks import OutputHooks
from ..store import ChangeLog
from .following import Contents
from .lifecycle import LiveDocuments
from .notebook import DocumentSettings, NotebookDocument
from .notebook_file import OutputImporter

if TYPE_CHECKING:
    from jupyter_server_fileid.manager import BaseFileIdManager

log = logging.getLogger(__name__)


class DocumentObserver(Protocol):
    """Told when a document opened and after it closed (execution/service.py)."""

    def opened(self, document: NotebookDocument) -> None: ...

    async def closed(self, document: NotebookDocument) -> None: ...


class DocumentManager(LiveDocuments[NotebookDocument]):
    """Opens, finds and closes notebook documents."""

    def __init__(
        self,
        *,
        changelog: ChangeLog,
        contents_manager: Contents,
        file_id_manager: Callable[[], BaseFileIdManager],
        settings: DocumentSettings,
        cleanup_delay: float,
        hooks: Callable[[NotebookDocument], OutputHooks] | None = None,
        outputs: OutputImporter | None = None,
        observer: DocumentObserver | None = None,
    ) -> None:
        super().__init__(
            cleanup_delay=cleanup_delay, on_opened=self._opened, on_closed=self._closed
        )
        self.changelog = changelog
        self.contents_manager = contents_manager
        self._file_ids = file_id_manager
        self.settings = settings
        self.hooks = hooks
        self.outputs = outputs
        self.observer = observer

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
        return await self.open(file_id, lambda: self._open_notebook(file_id))

    async def _open_notebook(self, file_id: str) -> NotebookDocument:
        path = self.path_of(file_id)
        if not path.endswith(".ipynb"):
            raise DocumentNotFoundError(f"file {file_id!r} is not a notebook")
        document = NotebookDocument(
            path,
            file_id,
            changelog=self.changelog,
            contents_manager=self.contents_manager,
            settings=self.settings,
        )
        if self.hooks is not None:
            document.hooks = self.hooks(document)
        document.notebook_file.outputs = self.outputs
        await document.open()
        log.info("opened %s (%s) at version %s", path, file_id, document.version)
        return document

    def _opened(self, document: NotebookDocument) -> None:
        if self.observer is not None:
            self.observer.opened(document)

    async def _closed(self, document: NotebookDocument) -> None:
        if self.observer is not None:
            await self.observer.closed(document)


async def _exists(contents_manager: Contents, path: str) -> bool:
    from jupyter_server.utils import ensure_async

    try:
        return bool(await ensure_async(contents_manager.file_exists(path)))
    except HTTPError as e:  # a contents manager may refuse paths outside its root
        raise PathOutsideRootError(e.log_message or str(e)) from None
