"""``OpenNotebook``: everything an open notebook is, built in one place.

``NotebookFactory.open`` builds an open notebook by constructor injection, in this order: its
widget table (whose state the document saves with the file), the document (table, change log,
file), the broadcast (what its clients see, once durable), the runner and the activity (kernel
usage, run progress, which follows the runner). The YNotebook projection JupyterLab edits is
built on demand (``ensure_projection``), restored from its own log when it has one.

The open notebook owns all of them, and ``close`` closes them in order: the runner (no more
writes), the rooms, the document (its final save), the YNotebook (its last updates logged),
the broadcast, the widgets, the activity, and the kernel session it used. The factory keeps the
open notebooks by file id (``get``): the execution entry points and the room registry find a
notebook's runner, rooms and widgets there; the document lifecycle (documents/manager.py)
opens and closes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..documents.broadcast import Broadcast
from ..documents.notebook import CLOSE_TIMEOUT, DocumentSettings, NotebookDocument
from ..errors import DocumentNotFoundError
from ..errors_seen import count_error
from ..format.states import records_of_state
from ..store.bases import Base
from ..store.projections import StoredProjection
from ..sync.table import Record
from ..transport.room import Room
from ..widgets.session import NotebookWidgets
from ..ynotebook.base import YNOTEBOOK_BUILDER
from ..ynotebook.projection import BaseMismatchError, BuiltBase, YNotebookProjection
from .activity import CollaboratorsPanel, NotebookActivity, UsageSettings
from .runner import NotebookRunner

if TYPE_CHECKING:
    from ..documents.following import Contents
    from ..documents.notebook_file import OutputImporter
    from ..outputs.blobs import BlobStore
    from ..outputs.handler import OutputLimits
    from ..outputs.hooks import NamedDocument, OutputHooks
    from ..outputs.overflow import MoreOutputStore
    from ..store import ChangeLog
    from ..store.history import HistorySquasher
    from .activity_clock import WorkTracker
    from .sessions import SessionKernels

log = logging.getLogger(__name__)


class KeepOpen(Protocol):
    """The document lifecycle: a notebook whose cells run stays open (documents/manager.py)."""

    def hold(self, document: NotebookDocument) -> None: ...

    def release(self, document: NotebookDocument) -> None: ...


@dataclass(frozen=True)
class NotebookParts:
    """What every open notebook is built from (the extension's stores and settings)."""

    changelog: ChangeLog
    contents_manager: Contents
    kernels: SessionKernels
    limits: OutputLimits
    settings: DocumentSettings
    hooks: Callable[[NamedDocument], OutputHooks] | None = None
    outputs: OutputImporter | None = None
    blobs: BlobStore | None = None
    overflow: MoreOutputStore | None = None
    history: HistorySquasher | None = None
    flush_interval: float = 0.05
    usage: UsageSettings = field(default_factory=UsageSettings)
    work_tracker: WorkTracker | None = None
    #: where JupyterLab's collaborators panel shows each notebook's kernel
    panel: CollaboratorsPanel | None = None


class OpenNotebook:
    """One open notebook and everything around it (module docstring)."""

    def __init__(
        self,
        document: NotebookDocument,
        broadcast: Broadcast,
        runner: NotebookRunner,
        activity: NotebookActivity,
        widgets: NotebookWidgets | None,
        *,
        kernels: SessionKernels,
        on_closed: Callable[[OpenNotebook], None],
    ) -> None:
        self.document = document
        self.broadcast = broadcast
        self.runner = runner
        self.activity = activity
        self.widgets = widgets
        self.kernels = kernels
        self._on_closed = on_closed
        self._projection: YNotebookProjection | None = None
        self._projection_lock = asyncio.Lock()
        self.closed = False
        document.notebook_file.on_saved.append(self._saved)

    @property
    def file_id(self) -> str:
        return self.document.file_id

    # -- the YNotebook ----------------------------------------------------------------------

    @property
    def projection(self) -> YNotebookProjection:
        """The YNotebook view for JupyterLab (``await ensure_projection()`` first)."""
        if self._projection is None:
            raise RuntimeError(f"the YNotebook of {self.document.path} is not loaded")
        return self._projection

    async def ensure_projection(self) -> YNotebookProjection:
        """The YNotebook view for JupyterLab: restored from its log, or built on first use."""
        document = self.document
        async with self._projection_lock:
            if self._projection is None:
                built = await document.take_ynotebook()
                if built is not None:  # (just imported: its YNotebook log was forgotten)
                    self._follow(built, new=True, unlogged=await self._record_base(built))
                    return built
                version = await document.table.durable()
                stored = await document.projection_log.load(document.file_id, version)
                projection = await self._make_projection(stored)
                changed = document.table.version != version or document.db.has_uncommitted_changes
                restored = stored.state is not None or stored.base is not None
                if restored and (changed or not stored.in_sync):
                    projection.reconcile()  # the table went on after the YNotebook's log
        return self.projection

    async def _record_base(self, built: YNotebookProjection) -> int:
        """Record a new YNotebook built from the imported records as its log's base, when a
        build of those records makes it again (``store/bases.py``): its build's updates are
        not logged. Returns how many of its first updates that is."""
        document = self.document
        base, source = built.take_base(), document.ynotebook_source_version
        if base is None or source is None:
            return 0
        stored = Base(document.file_id, source, YNOTEBOOK_BUILDER, base.client_id, base.clock)
        try:
            await document.projection_log.set_base(document.file_id, stored)
        except BaseException:  # (re-raised) nobody else will close it
            built.close()
            raise
        return base.pieces

    async def _make_projection(self, stored: StoredProjection) -> YNotebookProjection:
        document = self.document
        options = document.projection_options()
        state, base = stored.state, stored.base
        projection: YNotebookProjection | None = None
        if base is not None:
            try:
                projection = await self._restore_from_base(base, state)
            except BaseMismatchError as e:  # (built anew: its clients are asked to reload)
                count_error("document.ynotebook_base", e, f"restoring {document.path}", logger=log)
                await document.projection_log.forget(document.file_id)
                document.session_id = await document.projection_log.session_id(document.file_id)
                state = None
        if projection is not None:
            self._follow(projection, new=False)
        elif state is None:
            projection = await YNotebookProjection.built_in_steps(document.db, **options)
            self._follow(projection, new=True)
        else:
            projection = YNotebookProjection(document.db, state=state, **options)
            self._follow(projection, new=False)
        return projection

    async def _restore_from_base(self, base: Base, state: bytes | None) -> YNotebookProjection:
        """The YNotebook built again from the table version its log starts from, then what
        was logged after it applied (``store/bases.py``)."""
        document = self.document
        records: list[Record] | None = None  # (the table as it is: still that version)
        if document.table.version != base.source_version or document.db.has_uncommitted_changes:
            table_state = await document.changelog.state_at(base.source, base.source_version)
            records = await document.changelog.replay.run(records_of_state, table_state)
        return await YNotebookProjection.restored_from_base(
            document.db,
            records=records,
            base=BuiltBase(base.client_id, base.clock, 0),
            state=state,
            **document.projection_options(),
        )

    def _follow(self, projection: YNotebookProjection, *, new: bool, unlogged: int = 0) -> None:
        """Make ``projection`` the notebook's YNotebook, its updates broadcast (``new``: not
        restored from its log; its first ``unlogged`` updates are its log's base)."""
        document = self.document
        values = {"path": document.path, "document_id": f"json:notebook:{document.file_id}"}
        if document.notebook_file.hash is not None:
            values["hash"] = document.notebook_file.hash
        if new:
            # a new YNotebook: its first version is the whole of it, its state included
            projection.set_state(**values)
        self._projection = projection
        self.broadcast.follow(projection, new=new, unlogged=unlogged)
        projection.set_state(**values)  # (a restored YNotebook: a change, logged as any)

    def _saved(self) -> None:
        if self._projection is not None:
            state: dict[str, Any] = {"dirty": False}
            if self.document.notebook_file.hash is not None:  # the stock frontend learns it here
                state["hash"] = self.document.notebook_file.hash
            self._projection.set_state(**state)

    # -- clients ----------------------------------------------------------------------------

    def room(self, kind: str) -> Room:
        """The room of ``kind``: ``syncdb``, ``notebook`` (once the YNotebook is loaded) or
        ``widgets``."""
        if kind == "widgets":
            if self.widgets is None:
                raise DocumentNotFoundError(f"{self.document.path} has no widget table")
            return self.widgets.room
        return self.broadcast.room(kind)

    def renamed(self, path: str) -> None:
        """The file was renamed through the server."""
        self.document.renamed(path)
        if self._projection is not None:
            self._projection.set_state(path=path)

    # -- closing ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close everything the notebook is, in order (module docstring)."""
        if self.closed:
            return
        self.closed = True
        document = self.document
        try:
            await self.runner.close()
            self.broadcast.close_rooms()
            await document.close()
            if self._projection is not None:
                self._projection.close()
                if document.write_error is None:
                    await self._close_projection_log()
            self.broadcast.close()
            if self.widgets is not None:
                self.widgets.close()
            await self.activity.close()
            await self.kernels.release(document.path)
        finally:
            self._on_closed(self)

    async def _close_projection_log(self) -> None:
        document = self.document
        self.broadcast.flush()
        try:
            await asyncio.wait_for(document.changelog.flushed(), CLOSE_TIMEOUT)
            await document.projection_log.closed(document.file_id, document.table.version)
        except TimeoutError:
            log.warning("the YNotebook log of %s was not closed in time", document.path)
        except Exception as e:  # (the next open reconciles it with the table)
            count_error("document.close_projection", e, f"closing {document.path}", logger=log)


class NotebookFactory:
    """Builds open notebooks, and finds them by file id (module docstring)."""

    def __init__(self, parts: NotebookParts) -> None:
        self.parts = parts
        self.notebooks: dict[str, OpenNotebook] = {}

    def get(self, file_id: str) -> OpenNotebook:
        notebook = self.notebooks.get(file_id)
        if notebook is None:
            raise DocumentNotFoundError(f"notebook {file_id!r} is not open")
        return notebook

    async def open(
        self, path: str, file_id: str, keep_open: KeepOpen, ynotebook: bool = False
    ) -> OpenNotebook:
        """Build the open notebook of ``path`` and load it (its log, its file); ``ynotebook``:
        a JupyterLab client is coming (``NotebookDocument.open``)."""
        parts = self.parts
        widgets = NotebookWidgets(file_id, parts.blobs) if parts.blobs is not None else None
        document = NotebookDocument(
            path,
            file_id,
            changelog=parts.changelog,
            contents_manager=parts.contents_manager,
            settings=parts.settings,
            hooks=parts.hooks,
            outputs=parts.outputs,
            metadata=widgets,
        )
        try:
            await document.open(ynotebook=ynotebook)
        except BaseException:  # (re-raised) nothing else of the notebook was started
            if widgets is not None:
                widgets.close()
            raise
        broadcast = Broadcast(document.table, document.projection_log, on_raw=document.on_raw)
        runner = NotebookRunner(
            document,
            parts.kernels,
            limits=parts.limits,
            blobs=parts.blobs,
            overflow=parts.overflow,
            history=parts.history,
            flush_interval=parts.flush_interval,
            hold=keep_open.hold,
            release=keep_open.release,
            activity=parts.work_tracker,
            widgets=widgets,
            broadcast=broadcast,
        )
        activity = NotebookActivity(
            document,
            runner,
            parts.kernels,
            parts.usage,
            panel=parts.panel,
            server_state=broadcast.set_server_state,
        )
        notebook = OpenNotebook(
            document,
            broadcast,
            runner,
            activity,
            widgets,
            kernels=parts.kernels,
            on_closed=self._closed,
        )
        self.notebooks[file_id] = notebook
        return notebook

    def _closed(self, notebook: OpenNotebook) -> None:
        if self.notebooks.get(notebook.file_id) is notebook:
            del self.notebooks[notebook.file_id]
