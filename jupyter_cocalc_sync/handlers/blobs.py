"""``GET /api/cocalc-sync/blobs/{sha1}``: the bytes of a stored output (an image, a PDF)."""

from __future__ import annotations

from tornado import web

from ..outputs.blobs import SHA1
from .authorization import READ_DOCUMENT, requires
from .base import CocalcAPIHandler


class BlobHandler(CocalcAPIHandler):
    """Serves a blob with its MIME type; the content never changes, so it caches for good."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def get(self, sha1: str) -> None:
        if not SHA1.match(sha1):
            raise web.HTTPError(400, f"not a SHA1 (40 lowercase hex digits): {sha1!r}")
        etag = f'"{sha1}"'
        if self.request.headers.get("If-None-Match") == etag:
            self.set_status(304)
            self.finish()
            return
        blob = await self.services.blobs.get(sha1)
        if blob is None:
            raise web.HTTPError(404, f"no blob {sha1}")
        mime, data = blob
        self.set_header("ETag", etag)
        self.set_header("Cache-Control", "max-age=31536000, immutable")
        self.finish_raw(data, mime)

    def compute_etag(self) -> None:
        return None  # the ETag is the hash itself


def blob_routes() -> list[tuple[str, type]]:
    return [(r"/api/cocalc-sync/blobs/(?P<sha1>[^/]+)", BlobHandler)]
