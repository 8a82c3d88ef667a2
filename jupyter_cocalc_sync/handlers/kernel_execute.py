"""``POST /api/kernels/{kernel_id}/execute`` in both its dialects, and jupyter-server-nbmodel's
request routes.

JupyterLab's ``NotebookCellServerExecutor`` sends ``{"cell_id", "document_id"}`` and needs no
answer; nbmodel's clients send ``{"code", "metadata": {"document_id", "cell_id"}}`` and poll the
request the ``Location`` header names (``execution/requests.py``):

* ``GET /api/kernels/{id}/execute`` — the requests of the kernel not yet over;
* ``GET /api/kernels/{id}/requests/{uid}`` — 202 pending, 300 waiting for input, 200 done,
  500 never ran;
* ``DELETE /api/kernels/{id}/requests/{uid}`` — stop the run (204);
* ``POST /api/kernels/{id}/input`` ``{"input"}`` — answer the ``input()`` a run waits on (201).

A kernel this server does not know is a 404 on every route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado import web

from ..execution.requests import RequestNotFoundError, SourceMismatchError
from .authorization import CHANGE_DOCUMENT, READ_DOCUMENT, RUN_CODE, requires
from .base import CocalcAPIHandler

if TYPE_CHECKING:
    from ..execution.requests import ExecutionRequests

KERNEL = r"/api/kernels/(?P<kernel_id>[\w-]+)"


class KernelRequestHandler(CocalcAPIHandler):
    @property
    def requests(self) -> ExecutionRequests:
        return self.services.execution_requests

    def known_kernel(self, kernel_id: str) -> None:
        if kernel_id not in self.kernel_manager:
            raise web.HTTPError(404, f"Unknown kernel with id: {kernel_id}")


class KernelExecuteHandler(KernelRequestHandler):
    @web.authenticated
    @requires(RUN_CODE)
    async def post(self, kernel_id: str) -> None:
        self.known_kernel(kernel_id)
        body = self.json_body()
        if "code" in body:
            await self._nbmodel_request(kernel_id, body)
            return
        cell_id, document_id = body.get("cell_id"), body.get("document_id")
        if not isinstance(cell_id, str) or not isinstance(document_id, str):
            raise web.HTTPError(
                400,
                'give "cell_id" and "document_id" (JupyterLab) or "code" and "metadata": '
                '{"document_id", "cell_id"} (jupyter-server-nbmodel), as strings',
            )
        await self.services.execution.run_from_frontend(
            kernel_id, cell_id, document_id, origin=self.origin
        )
        self.finish_json({"cell_id": cell_id, "queued": True})

    async def _nbmodel_request(self, kernel_id: str, body: dict[str, object]) -> None:
        code, metadata = body["code"], body.get("metadata", {})
        if not isinstance(code, str) or not isinstance(metadata, dict):
            raise web.HTTPError(400, '"code" must be a string and "metadata" an object')
        if body.get("server") is not None:
            raise web.HTTPError(400, "this server runs its own kernels only (no remote server)")
        try:
            request = await self.requests.put(kernel_id, code, metadata, origin=self.origin)
        except SourceMismatchError as e:
            raise web.HTTPError(409, str(e)) from None
        context = request.context()
        self.set_header("Location", context["request_url"])
        self.set_header("Access-Control-Expose-Headers", "Location")
        body = {**context, "pending": True, "request_status": "queued", "outputs": "[]"}
        self.finish_json(body, status=202)

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, kernel_id: str) -> None:
        self.known_kernel(kernel_id)
        self.finish_json({"kernel_id": kernel_id, "requests": self.requests.pending(kernel_id)})


class ExecutionRequestHandler(KernelRequestHandler):
    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, kernel_id: str, request_id: str) -> None:
        try:
            status, body = self.requests.get(kernel_id, request_id)
        except RequestNotFoundError as e:
            raise web.HTTPError(404, str(e)) from None
        if status == 300:
            self.set_header("Location", f"/api/kernels/{kernel_id}/input")
            self.set_header("Access-Control-Expose-Headers", "Location")
        self.finish_json(body, status=status)

    @web.authenticated
    @requires(RUN_CODE)
    async def delete(self, kernel_id: str, request_id: str) -> None:
        try:
            await self.requests.cancel(kernel_id, request_id)
        except RequestNotFoundError as e:
            raise web.HTTPError(404, str(e)) from None
        self.set_status(204)
        self.finish()


class KernelInputHandler(KernelRequestHandler):
    @web.authenticated
    @requires(CHANGE_DOCUMENT)
    async def post(self, kernel_id: str) -> None:
        self.known_kernel(kernel_id)
        value = self.json_body().get("input")
        if not isinstance(value, str):
            raise web.HTTPError(400, '"input" must be a string')
        if not self.requests.answer_input(kernel_id, value):
            raise web.HTTPError(409, f"no run on kernel {kernel_id} is waiting for input")
        self.set_status(201)
        self.finish()


def kernel_execute_routes() -> list[tuple[str, type]]:
    return [
        (KERNEL + r"/execute", KernelExecuteHandler),
        (KERNEL + r"/requests/(?P<request_id>[\w-]+)", ExecutionRequestHandler),
        (KERNEL + r"/input", KernelInputHandler),
    ]
