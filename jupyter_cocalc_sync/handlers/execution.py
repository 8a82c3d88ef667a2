"""Execution routes: run, interrupt, restart, change kernel, more output, stdin answers (the
kernel routes, ``POST /api/kernels/{kernel_id}/execute`` among them, are in
``kernel_execute``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado import web

from .authorization import CHANGE_DOCUMENT, READ_DOCUMENT, RUN_CODE, requires
from .notebooks import NOTEBOOK, NotebookHandlerBase

if TYPE_CHECKING:
    from ..execution.runner import NotebookRunner
    from ..execution.service import ExecutionService


class ExecutionHandlerBase(NotebookHandlerBase):
    @property
    def execution(self) -> ExecutionService:
        return self.services.execution

    async def runner(self, path: str) -> NotebookRunner:
        return await self.execution.runner(self.api_path(path))


class RunHandler(ExecutionHandlerBase):
    """``POST …/run`` ``{"cell_ids": [...]}`` or ``{"all": true}`` → 202."""

    @web.authenticated
    @requires(RUN_CODE)
    async def post(self, path: str) -> None:
        body = self.json_body()
        cell_ids = body.get("cell_ids")
        all_cells = body.get("all") is True
        if not all_cells and (
            not isinstance(cell_ids, list) or not all(isinstance(c, str) for c in cell_ids)
        ):
            raise web.HTTPError(400, 'give "cell_ids": [ids] or "all": true')
        queued = await self.execution.run(
            self.api_path(path), cell_ids, all_cells=all_cells, origin=self.origin
        )
        self.finish_json({"queued": queued}, status=202)


class InterruptHandler(ExecutionHandlerBase):
    @web.authenticated
    @requires(RUN_CODE)
    async def post(self, path: str) -> None:
        runner = await self.runner(path)
        await runner.interrupt()
        self.finish_json({"interrupted": True})


class RestartHandler(ExecutionHandlerBase):
    """``POST …/restart`` ``{"run_all": bool, "clear": bool}``."""

    @web.authenticated
    @requires(RUN_CODE)
    async def post(self, path: str) -> None:
        body = self.json_body(required=False)
        run_all, clear = body.get("run_all", False), body.get("clear", False)
        if not isinstance(run_all, bool) or not isinstance(clear, bool):
            raise web.HTTPError(400, '"run_all" and "clear" must be booleans')
        runner = await self.runner(path)
        await runner.restart(run_all=run_all, clear=clear)
        self.finish_json({"restarted": True, "run_all": run_all, "clear": clear})


class KernelChangeHandler(ExecutionHandlerBase):
    """``POST …/kernel`` ``{"name": kernelspec}``."""

    @web.authenticated
    @requires(RUN_CODE)
    async def post(self, path: str) -> None:
        name = self.json_body().get("name")
        if not isinstance(name, str) or not name:
            raise web.HTTPError(400, '"name" must be a kernelspec name')
        if name not in self.kernel_spec_manager.find_kernel_specs():
            raise web.HTTPError(404, f"no kernel named {name!r} is installed")
        runner = await self.runner(path)
        await runner.change_kernel(name)
        self.finish_json({"kernel": name})


class InputHandler(ExecutionHandlerBase):
    """``POST …/input`` ``{"cell_id", "value"}``: answer ``input()``/``getpass()``.

    A password answered here never enters the shared document or its history.
    """

    @web.authenticated
    @requires(CHANGE_DOCUMENT)
    async def post(self, path: str) -> None:
        body = self.json_body()
        cell_id, value = body.get("cell_id"), body.get("value")
        if not isinstance(cell_id, str) or not isinstance(value, str):
            raise web.HTTPError(400, '"cell_id" and "value" must be strings')
        runner = await self.runner(path)
        if not runner.answer_input(cell_id, value):
            raise web.HTTPError(409, f"cell {cell_id!r} is not waiting for input")
        self.finish_json({"answered": True})


#: entries per page when ``limit`` is not given, and at most (an entry is at most 64 KiB of
#: stream text, or one other output)
DEFAULT_PAGE_ENTRIES = 8
MAX_PAGE_ENTRIES = 256


class MoreOutputHandler(NotebookHandlerBase):
    """``GET …/cells/{cell_id}/more_output``: all of the overflow, or with ``offset`` and/or
    ``limit`` a page of its entries, as JupyterLab shows outputs."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, path: str, cell_id: str) -> None:
        page = self._page()
        more = await self.services.execution.more_output(self.api_path(path), cell_id, page)
        await self.finish_large_json(more)

    def _page(self) -> tuple[int, int] | None:
        offset = self.get_query_argument("offset", None)
        limit = self.get_query_argument("limit", None)
        if offset is None and limit is None:
            return None
        return (
            _whole_number("offset", offset, 0, None),
            _whole_number("limit", limit, DEFAULT_PAGE_ENTRIES, MAX_PAGE_ENTRIES),
        )


def _whole_number(name: str, raw: str | None, default: int, most: int | None) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or (most is not None and int(raw) > most):
        bound = f" and at most {most}" if most is not None else ""
        raise web.HTTPError(400, f"{name} must be a whole number >= 0{bound}, not {raw!r}")
    return int(raw)


def execution_routes() -> list[tuple[str, type]]:
    return [
        (NOTEBOOK + r"/run", RunHandler),
        (NOTEBOOK + r"/interrupt", InterruptHandler),
        (NOTEBOOK + r"/restart", RestartHandler),
        (NOTEBOOK + r"/kernel", KernelChangeHandler),
        (NOTEBOOK + r"/input", InputHandler),
        (NOTEBOOK + r"/cells/(?P<cell_id>[^/]+)/more_output", MoreOutputHandler),
    ]
