"""``ExecutionService``: the entry points to the runners of open notebooks.

The runners are built with the rest of each open notebook (execution/open_notebook.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DocumentNotFoundError, InvalidRecordError
from ..format.ipynb import ordered_outputs
from ..origin import Origin
from ..outputs.formats import empty_page, overflow_page
from ..outputs.handler import is_marker
from .activity import NotebookActivity
from .frontend_runs import FrontendRuns
from .open_notebook import NotebookFactory
from .runner import NotebookRunner

if TYPE_CHECKING:
    from ..documents.manager import DocumentManager
    from ..documents.notebook import NotebookDocument
    from ..outputs.overflow import MoreOutputStore


class ExecutionService:
    """Routes run/interrupt/restart requests to the runners of open notebooks."""

    def __init__(
        self,
        documents: DocumentManager,
        notebooks: NotebookFactory,
        overflow: MoreOutputStore | None = None,
    ) -> None:
        self.documents = documents
        self.notebooks = notebooks
        self.overflow = overflow
        self.frontend_runs = FrontendRuns(notebooks)

    def _runner_of(self, document: NotebookDocument) -> NotebookRunner:
        return self.notebooks.get(document.file_id).runner

    async def runner(self, path: str) -> NotebookRunner:
        return self._runner_of(await self.documents.get(path))

    async def activity(self, path: str) -> NotebookActivity:
        """Kernel usage and run progress of the notebook at ``path``."""
        document = await self.documents.get(path)
        return self.notebooks.get(document.file_id).activity

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
        self.frontend_runs.request(document, cell_id, kernel_id, origin)

    async def more_output(
        self, path: str, cell_id: str, page: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        """A cell's overflow: all of it as stored, or ``page`` (offset, limit) of its entries
        as JupyterLab shows outputs (``outputs.formats.overflow_page``)."""
        document = await self.documents.get(path)
        record = document.db.peek(("cell", cell_id))
        if record is None:
            raise DocumentNotFoundError(f"no cell {cell_id!r} in {path}")
        overflow = self.overflow
        if overflow is None or not any(is_marker(o) for o in ordered_outputs(record)):
            if page is not None:
                return empty_page(page[0])
            return {"messages": [], "truncated": 0, "discarded": 0}
        if page is not None:
            offset, limit = page
            return await overflow_page(
                overflow, self.notebooks.parts.blobs, document.file_id, cell_id, offset, limit
            )
        more = await overflow.read(document.file_id, cell_id)
        more.pop("head_count", None)
        return more
