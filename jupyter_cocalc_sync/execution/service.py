"""``ExecutionService``: one ``NotebookRunner`` per open notebook, and the entry points to them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..errors import DocumentNotFoundError, InvalidRecordError
from ..format.ipynb import cell_order_key, ordered_outputs
from ..origin import Origin
from ..outputs.handler import is_marker
from ..widgets.session import NotebookWidgets
from .activity import CollaboratorsPanel, NotebookActivity, UsageSettings
from .runner import NotebookRunner

if TYPE_CHECKING:
    from ..documents.manager import DocumentManager
    from ..documents.notebook import NotebookDocument
    from ..outputs.blobs import BlobStore
    from ..outputs.handler import OutputLimits
    from ..outputs.overflow import MoreOutputStore
    from ..store.history import HistorySquasher
    from .activity_clock import WorkTracker
    from .sessions import SessionKernels

#: JupyterLab's run-all sends one request per cell at once, over several connections; requests
#: that arrive within this window are queued in notebook order, not in arrival order.
FRONTEND_BATCH_WINDOW = 0.015


class ExecutionService:
    """Creates runners as notebooks open and routes run/interrupt/restart requests to them."""

    def __init__(
        self,
        documents: DocumentManager,
        kernels: SessionKernels,
        *,
        limits: OutputLimits,
        blobs: BlobStore | None,
        overflow: MoreOutputStore | None,
        history: HistorySquasher | None = None,
        flush_interval: float = 0.05,
        usage: UsageSettings | None = None,
        work_tracker: WorkTracker | None = None,
    ) -> None:
        self.documents = documents
        self.kernels = kernels
        self.limits = limits
        self.blobs = blobs
        self.overflow = overflow
        self.history = history
        self.flush_interval = flush_interval
        self.work_tracker = work_tracker
        #: per document: the cells asked for, the timer, the kernel id and who asked first
        self._batches: dict[str, tuple[list[str], asyncio.TimerHandle, str | None, Origin]] = {}
        self.usage = usage or UsageSettings()
        self._activities: dict[str, NotebookActivity] = {}  # file id -> usage and progress
        #: where JupyterLab's collaborators panel shows each kernel (set by the extension)
        self.collaborators: CollaboratorsPanel | None = None

    def opened(self, document: NotebookDocument) -> None:
        """``DocumentObserver``: a document opened."""
        self.attach(document)

    async def closed(self, document: NotebookDocument) -> None:
        """``DocumentObserver``: a document closed (its runner with it)."""
        batch = self._batches.pop(document.file_id, None)
        if batch is not None:
            batch[1].cancel()
        activity = self._activities.pop(document.file_id, None)
        if activity is not None:
            await activity.close()
        await self.kernels.release(document.path)

    def attach(self, document: NotebookDocument) -> NotebookRunner:
        """Give a freshly opened document its runner."""
        runner = NotebookRunner(
            document,
            self.kernels,
            limits=self.limits,
            blobs=self.blobs,
            overflow=self.overflow,
            history=self.history,
            flush_interval=self.flush_interval,
            hold=self.documents.hold,
            release=self.documents.release,
            activity=self.work_tracker,
        )
        document.runner = runner
        activity = NotebookActivity(
            document, runner, self.kernels, self.usage, panel=self.collaborators
        )
        runner.progress = self._activities[document.file_id] = activity
        if self.blobs is not None:
            runner.widgets = NotebookWidgets(document.file_id, self.blobs)
            document.metadata_sources.append(runner.widgets)
        return runner

    async def runner(self, path: str) -> NotebookRunner:
        return _runner_of(await self.documents.get(path))

    async def activity(self, path: str) -> NotebookActivity:
        """Kernel usage and run progress of the notebook at ``path``."""
        document = await self.documents.get(path)
        return self._activities[document.file_id]

    async def run(
        self,
        path: str,
        cell_ids: list[str] | None,
        *,
        all_cells: bool,
        origin: Origin,
    ) -> list[str]:
        runner = await self.runner(path)
        if all_cells:
            return runner.run_all(origin=origin)
        missing = [c for c in cell_ids or [] if runner.db.peek(("cell", c)) is None]
        if missing:
            raise InvalidRecordError(f"no such cells: {missing}")
        return runner.run(cell_ids or [], origin=origin)

    async def run_from_frontend(
        self, kernel_id: str, cell_id: str, document_id: str, *, origin: Origin
    ) -> None:
        """``POST /api/kernels/{id}/execute`` from JupyterLab's ``NotebookCellServerExecutor``."""
        parts = document_id.split(":", 2)
        if len(parts) != 3 or parts[1] != "notebook":
            raise DocumentNotFoundError(f"not a notebook document id: {document_id!r}")
        document = await self.documents.get_by_id(parts[2])
        if document.db.peek(("cell", cell_id)) is None:
            raise InvalidRecordError(f"no cell {cell_id!r} in {document.path}")
        pending = self._batches.get(document.file_id)
        if pending is None:
            handle = asyncio.get_running_loop().call_later(
                FRONTEND_BATCH_WINDOW, self._run_batch, document
            )
            # (a batch is one user's run-all: the runs are recorded under who asked first)
            self._batches[document.file_id] = ([cell_id], handle, kernel_id, origin)
        else:
            pending[0].append(cell_id)

    def _run_batch(self, document: NotebookDocument) -> None:
        cell_ids, _, kernel_id, origin = self._batches.pop(document.file_id)
        order = {c: cell_order_key(document.db.peek(("cell", c)) or {"id": c}) for c in cell_ids}
        _runner_of(document).run(
            sorted(dict.fromkeys(cell_ids), key=order.__getitem__),
            kernel_id=kernel_id,
            origin=origin,
        )

    async def more_output(self, path: str, cell_id: str) -> dict[str, Any]:
        document = await self.documents.get(path)
        record = document.db.peek(("cell", cell_id))
        if record is None:
            raise DocumentNotFoundError(f"no cell {cell_id!r} in {path}")
        if self.overflow is None or not any(is_marker(o) for o in ordered_outputs(record)):
            return {"messages": [], "truncated": 0, "discarded": 0}
        more = await self.overflow.read(document.file_id, cell_id)
        more.pop("head_count", None)
        return more


def _runner_of(document: NotebookDocument) -> NotebookRunner:
    runner = document.runner
    if runner is None:  # (``attach`` gives one to every document as it opens)
        raise RuntimeError(f"{document.path} has no runner")
    return runner
