"""nbgrader routes of a notebook: write its student version, list tampered cells."""

from __future__ import annotations

from tornado import web

from ..assignments.service import default_target
from .authorization import CHANGE_DOCUMENT, READ_DOCUMENT, requires
from .notebooks import NOTEBOOK, NotebookHandlerBase


class StudentVersionHandler(NotebookHandlerBase):
    """``POST …/assignment/student`` ``{"target": path}`` → 201 ``{"path","cells","checksums"}``
    (default target: ``release/…``, as ``nbgrader generate_assignment`` lays it out)."""

    @web.authenticated
    @requires(CHANGE_DOCUMENT)
    async def post(self, path: str) -> None:
        source = self.api_path(path)
        target = self.json_body(required=False).get("target") or default_target(source)
        if not isinstance(target, str) or not target.endswith(".ipynb"):
            raise web.HTTPError(400, '"target" must be the path of a new .ipynb file')
        target = self.api_path(target)
        if target == source:
            raise web.HTTPError(400, '"target" must differ from the notebook itself')
        written = await self.services.assignments.write_student_version(source, target)
        self.finish_json(written, status=201)


class TamperedCellsHandler(NotebookHandlerBase):
    """``GET …/assignment/tampered`` → ``{"path","tampered":[{"cell_id","grade_id","index"}]}``."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, path: str) -> None:
        self.finish_json(await self.services.assignments.tampered(self.api_path(path)))


def assignment_routes() -> list[tuple[str, type]]:
    return [
        (NOTEBOOK + r"/assignment/student", StudentVersionHandler),
        (NOTEBOOK + r"/assignment/tampered", TamperedCellsHandler),
    ]
