"""``ExecutionRequests``: jupyter-server-nbmodel's execution API over this server's runners.

nbmodel's clients (``jupyter-mcp-server`` with ``JUPYTER_MCP_EXECUTE_VIA_HTTP``, nbmodel's own
JupyterLab executor) ``POST /api/kernels/{id}/execute`` with ``{"code", "metadata":
{"document_id", "cell_id"}}``, get a request id, and poll ``GET …/requests/{uid}`` until the run
is over: 202 while it is queued or running (with the outputs so far), 300 while it waits for
``input()``, 200 with ``{"status", "execution_count", "outputs"}`` (``outputs`` a JSON string of
nbformat outputs) when it ended, 500 with ``{"error"}`` when it never ran. A request here is a run
of the notebook's cell by the notebook's runner: the outputs go into the table like those of any
server run, attributed to whoever asked.

The code runs as the cell's source in the document, never beside it: a request whose ``code``
differs from the cell's source waits a moment for the client's edit (sent over its websocket
just before) to arrive, and is refused if the two still differ.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CocalcSyncError, DocumentNotFoundError, InvalidRequestError
from ..format.ipynb import ordered_outputs
from ..origin import Origin
from ..sync.table import ChangeEvent

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..documents.manager import DocumentManager
    from ..documents.notebook import NotebookDocument
    from .service import ExecutionService

#: how long a request waits for its cell (and the cell's source) to reach the table: the client
#: usually wrote them over its websocket just before it asked for the run
SETTLE_TIMEOUT = 10.0
#: finished requests kept until their client reads them (the oldest are forgotten first)
MAX_FINISHED = 1000
INPUT_REQUEST = "input_request"


class SourceMismatchError(CocalcSyncError, ValueError):
    """The code of a run request is not the cell's source in the document (409)."""


class RequestNotFoundError(CocalcSyncError, LookupError):
    """No execution request of that id for that kernel (404)."""


@dataclass
class ExecutionRequest:
    """One run asked for through the API: which cell, and how it went."""

    uid: str
    kernel_id: str
    document: NotebookDocument
    cell_id: str
    #: the cell's ``end`` when the run was asked for: a new one means this run ended
    end_before: Any
    #: the final answer once the run is over (``None`` while it is not)
    result: dict[str, Any] | None = None
    started: bool = False
    #: whether the runner still has the cell queued or running (``NotebookRunner.has_pending``)
    pending: Callable[[str], bool] = field(default=lambda _cell_id: False, repr=False)
    _unsubscribe: Callable[[], None] | None = field(default=None, repr=False)

    def context(self) -> dict[str, Any]:
        """What every answer about this request says."""
        return {
            "request_id": self.uid,
            "kernel_id": self.kernel_id,
            "request_url": request_url(self.kernel_id, self.uid),
            "cell_id": self.cell_id,
            "document_path": self.document.path,
        }


def request_url(kernel_id: str, uid: str) -> str:
    return f"/api/kernels/{kernel_id}/requests/{uid}"


class ExecutionRequests:
    """The execution requests of the server, per kernel (module docstring)."""

    def __init__(self, documents: DocumentManager, execution: ExecutionService) -> None:
        self.documents = documents
        self.execution = execution
        self._requests: OrderedDict[str, ExecutionRequest] = OrderedDict()

    # -- asking -----------------------------------------------------------------------------

    async def put(
        self,
        kernel_id: str,
        code: str,
        metadata: dict[str, Any],
        *,
        origin: Origin,
    ) -> ExecutionRequest:
        """Queue the run of the cell ``metadata`` names; returns the request to poll."""
        cell_id = metadata.get("cell_id")
        document_id, document_path = metadata.get("document_id"), metadata.get("document_path")
        if not isinstance(cell_id, str) or not (
            isinstance(document_id, str) or isinstance(document_path, str)
        ):
            raise InvalidRequestError(
                'this server runs cells of notebooks: give "metadata": {"document_id" (or '
                '"document_path"), "cell_id"} with the code'
            )
        document = await self._document(document_id, document_path)
        await self._settled(document, cell_id, code)
        record = document.db.peek(("cell", cell_id)) or {}
        if record.get("cell_type", "code") != "code":
            raise InvalidRequestError(f"cell {cell_id!r} is not a code cell")
        runner = await self.execution.runner(document.path)
        # (no await from here on: the cell's state is read and followed from the same moment)
        record = document.db.peek(("cell", cell_id)) or {}
        request = ExecutionRequest(
            str(uuid.uuid4()),
            kernel_id,
            document,
            cell_id,
            end_before=record.get("end"),
            pending=runner.has_pending,
        )
        request.started = record.get("state") == "busy"
        request._unsubscribe = document.db.on_change(lambda event: self._on_change(request, event))
        self._requests[request.uid] = request
        self._forget_old()
        runner.run([cell_id], kernel_id=kernel_id, origin=origin)
        self._check(request)  # (a cell run refused at once has ended already)
        return request

    async def _document(self, document_id: Any, document_path: Any) -> NotebookDocument:
        if isinstance(document_id, str):
            parts = document_id.split(":", 2)
            if len(parts) != 3 or parts[1] != "notebook":
                raise InvalidRequestError(
                    f"document_id {document_id!r} is not a notebook room id "
                    "(json:notebook:<file id>)"
                )
            return await self.documents.get_by_id(parts[2])
        return await self.documents.get(str(document_path))

    async def _settled(self, document: NotebookDocument, cell_id: str, code: str) -> None:
        """Wait until the cell is in the table with ``code`` as its source."""

        def source() -> str | None:
            record = document.db.peek(("cell", cell_id))
            return None if record is None else str(record.get("input", ""))

        if source() == code:
            return
        changed = asyncio.Event()
        unsubscribe = document.db.on_change(lambda _event: changed.set())
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                while source() != code:
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            current = source()
            if current is None:
                raise DocumentNotFoundError(f"no cell {cell_id!r} in {document.path}") from None
            raise SourceMismatchError(
                f"the code is not the source of cell {cell_id!r} in {document.path} (this "
                "server runs what the document holds: write the code into the cell first)"
            ) from None
        finally:
            unsubscribe()

    # -- following the run ------------------------------------------------------------------

    def _on_change(self, request: ExecutionRequest, event: ChangeEvent) -> None:
        if ("cell", request.cell_id) in event.changes:
            self._check(request)

    def _check(self, request: ExecutionRequest) -> None:
        """Note how the run goes: started, ended (its result), or never ran."""
        if request.result is not None:
            return
        record = request.document.db.peek(("cell", request.cell_id))
        if record is None:
            self._finish(request, {"error": f"cell {request.cell_id!r} was deleted"})
            return
        state = record.get("state")
        if state == "busy":
            request.started = True
            return
        if state not in (None, "idle"):
            return
        if record.get("end") is not None and (
            request.started or record.get("end") != request.end_before
        ):
            outputs = self._outputs(request.document, record)
            failed = any(o.get("output_type") == "error" for o in outputs)
            self._finish(
                request,
                {
                    "status": "error" if failed else "ok",
                    "execution_count": record.get("exec_count"),
                    "outputs": json.dumps(outputs),
                },
            )
        elif not request.pending(request.cell_id):
            # idle again and never ran: the queue was dropped (an error, an interrupt)
            self._finish(request, {"error": "Execution cancelled."})

    def _finish(self, request: ExecutionRequest, result: dict[str, Any]) -> None:
        request.result = result
        if request._unsubscribe is not None:
            request._unsubscribe()
            request._unsubscribe = None

    @staticmethod
    def _outputs(document: NotebookDocument, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The cell's outputs as JupyterLab gets them (blobs inlined, markers as notices)."""
        render = document.hooks.render_output
        outputs = ordered_outputs(record)
        if render is None:  # (a document without output stores: the table's outputs as they are)
            return outputs
        return [render(output, record["id"]) for output in outputs]

    # -- answering --------------------------------------------------------------------------

    def get(self, kernel_id: str, uid: str) -> tuple[int, dict[str, Any]]:
        """The status and body of ``GET …/requests/{uid}`` (a finished request is answered
        once, then forgotten, as nbmodel does)."""
        request = self._find(kernel_id, uid)
        self._check(request)
        context = request.context()
        if request.result is not None:
            del self._requests[uid]
            if "error" in request.result:
                return 500, {**context, **request.result, "pending": False}
            body = {**context, **request.result, "pending": False, "request_status": "complete"}
            return 200, body
        record = request.document.db.peek(("cell", request.cell_id)) or {}
        outputs = ordered_outputs(record) if request.started else []
        waiting = next((o for o in outputs if o.get("output_type") == INPUT_REQUEST), None)
        if waiting is not None:
            prompt = {"prompt": waiting.get("prompt", ""), "password": waiting.get("password")}
            return 300, {
                **context,
                "parent_header": {},
                "input_request": prompt,
                "pending": True,
                "request_status": "input",
            }
        shown = self._outputs(request.document, record) if request.started else []
        return 202, {
            **context,
            "pending": True,
            "request_status": "running" if request.started else "queued",
            "outputs": json.dumps(shown),
        }

    def pending(self, kernel_id: str) -> list[dict[str, Any]]:
        """The requests of ``kernel_id`` not yet over (``GET …/execute``)."""
        listed = []
        for request in self._requests.values():
            if request.kernel_id == kernel_id and request.result is None:
                status = "running" if request.started else "queued"
                listed.append({**request.context(), "pending": True, "request_status": status})
        return listed

    async def cancel(self, kernel_id: str, uid: str) -> None:
        """``DELETE …/requests/{uid}``: stop that run (the cell ends with the interrupt)."""
        request = self._find(kernel_id, uid)
        self._check(request)
        if request.result is not None:
            return
        runner = await self.execution.runner(request.document.path)
        if runner.current == request.cell_id:
            await runner.interrupt(clear_queue=False)
        else:
            runner.unqueue(request.cell_id)
        self._check(request)

    def answer_input(self, kernel_id: str, value: str) -> bool:
        """``POST …/input``: answer the ``input()`` a request of ``kernel_id`` waits on."""
        for request in self._requests.values():
            if request.kernel_id != kernel_id or request.result is not None:
                continue
            notebook = self.execution.notebooks.notebooks.get(request.document.file_id)
            if notebook is not None and notebook.runner.answer_input(request.cell_id, value):
                return True
        return False

    def _find(self, kernel_id: str, uid: str) -> ExecutionRequest:
        request = self._requests.get(uid)
        if request is None or request.kernel_id != kernel_id:
            raise RequestNotFoundError(
                f"Execution request {uid} for kernel {kernel_id} does not exist."
            )
        return request

    def _forget_old(self) -> None:
        finished = [uid for uid, r in self._requests.items() if r.result is not None]
        for uid in finished[: max(0, len(finished) - MAX_FINISHED)]:
            del self._requests[uid]

    def close(self) -> None:
        for request in self._requests.values():
            if request._unsubscribe is not None:
                request._unsubscribe()
        self._requests.clear()
