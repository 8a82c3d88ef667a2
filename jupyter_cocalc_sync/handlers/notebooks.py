"""REST routes of a notebook: records, history, export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tornado import web

from .authorization import CHANGE_DOCUMENT, EXPORT, READ_DOCUMENT, check_run_requests, requires
from .base import CocalcAPIHandler

if TYPE_CHECKING:
    from ..documents.notebook import NotebookDocument

NOTEBOOK = r"/api/cocalc-sync/notebooks/(?P<path>.+?\.ipynb)"


class NotebookHandlerBase(CocalcAPIHandler):
    async def document(self, path: str) -> NotebookDocument:
        return await self.services.documents.get(self.api_path(path))


class NotebookHandler(NotebookHandlerBase):
    """``GET …/notebooks/{path}``: open the notebook and return its records
    (``?records=false``: only its path, file id and version — what a live client needs)."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, path: str) -> None:
        document = await self.document(path)
        with_records = self.get_query_argument("records", "true") != "false"
        if with_records:
            records, version = await document.durable_records(ordered=True)
        else:
            records, version = [], await document.table.durable()
        reply: dict[str, Any] = {
            "path": document.path,
            "file_id": document.file_id,
            "version": version,
            # the server's own awareness state (kernel usage, run progress) has this id
            "awareness_id": document.db.doc.client_id,
        }
        if with_records:
            reply["records"] = records
        await self.finish_large_json(reply)


class RecordsHandler(NotebookHandlerBase):
    """``POST …/records`` ``{"set": [...], "delete": [...]}``: one commit."""

    @web.authenticated
    @requires(CHANGE_DOCUMENT)
    async def post(self, path: str) -> None:
        body = self.json_body()
        sets, deletes = body.get("set", []), body.get("delete", [])
        if not isinstance(sets, list) or not isinstance(deletes, list):
            raise web.HTTPError(400, '"set" and "delete" must be lists of records')
        unknown = set(body) - {"set", "delete"}
        if unknown:
            raise web.HTTPError(400, f"unknown fields {sorted(unknown)}")
        await check_run_requests(self, sets)
        document = await self.document(path)
        version = await document.apply(sets, deletes, origin=self.origin)
        self.finish_json({"version": version})


class HistoryHandler(NotebookHandlerBase):
    """``GET …/history``: every version, oldest first."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, path: str) -> None:
        document = await self.document(path)
        versions = await document.history()
        await self.finish_large_json({"versions": [v.to_json() for v in versions]})


class VersionHandler(NotebookHandlerBase):
    """``GET …/history/{version}``: the records as of that version."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, path: str, version: str) -> None:
        document = await self.document(path)
        records = await document.records_at(int(version), ordered=True)
        await self.finish_large_json({"version": int(version), "records": records})


class RevertHandler(NotebookHandlerBase):
    """``POST …/revert`` ``{"version": v}``: commit version ``v`` as a new version."""

    @web.authenticated
    @requires(CHANGE_DOCUMENT)
    async def post(self, path: str) -> None:
        version = self.json_body().get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise web.HTTPError(400, '"version" must be an integer')
        document = await self.document(path)
        self.finish_json({"version": await document.revert(version, origin=self.origin)})


class ExportHandler(NotebookHandlerBase):
    """``GET …/export?to=ipynb|html|script|markdown|…``: nbconvert from the live notebook."""

    @web.authenticated
    @requires(EXPORT)
    async def get(self, path: str) -> None:
        to = self.get_query_argument("to", "ipynb")
        document = await self.document(path)
        export = await self.services.exporter.export(document, to)
        download = self.get_query_argument("download", "false") == "true"
        self.set_header("Content-Disposition", content_disposition(export.filename, download))
        self._etag = False  # hashing a big notebook's export would stall the event loop
        self.finish_raw(export.body, export.mimetype)


def content_disposition(filename: str, download: bool) -> str:
    """``attachment`` (``download=true``) or ``inline``, with the file name in both the plain
    and the RFC 6266 UTF-8 form (non-ASCII names)."""
    kind = "attachment" if download else "inline"
    plain = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def notebook_routes() -> list[tuple[str, type]]:
    return [
        (NOTEBOOK + r"/records", RecordsHandler),
        (NOTEBOOK + r"/history/(?P<version>\d+)", VersionHandler),
        (NOTEBOOK + r"/history", HistoryHandler),
        (NOTEBOOK + r"/revert", RevertHandler),
        (NOTEBOOK + r"/export", ExportHandler),
        (NOTEBOOK, NotebookHandler),
    ]
