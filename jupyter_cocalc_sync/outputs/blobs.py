"""``BlobStore``: binary outputs kept once, by the SHA1 of their decoded bytes.

A PNG shown in 50 cells is stored once, and the shared document holds ``"sha1:<hex>"`` under the
MIME type instead of megabytes of base64 that every collaborator would download on every open.
Only binary types are stored: ``image/svg+xml`` is text and is never base64-decoded (CoCalc
decoded it and corrupted SVGs).

Writes are queued and committed in batches by the SQLite worker; the bytes stay in a bounded
in-memory cache so the JupyterLab projection can re-inline them without waiting for the disk.
``extract`` and ``put`` (base64 decoding and SHA1 of megabytes, e.g. when a notebook full of
images is imported) may run on a worker thread: the cache and the queues are locked, and the
flush is handed to the event loop.
Which documents reference a blob is recorded, and blobs that no document references any more
are collected (``collect``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import anyio

from ..store.protocol import StoreConnection, StoreWorker, transaction

#: MIME types whose payload is base64 of binary data (the only ones put in the store)
BINARY_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})
PREFIX = "sha1:"
SHA1 = re.compile(r"^[0-9a-f]{40}$")

DDL = """
CREATE TABLE IF NOT EXISTS blobs (
    sha1 TEXT PRIMARY KEY,
    mime TEXT NOT NULL,
    data BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_refs (
    doc TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    PRIMARY KEY (doc, sha1)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blob_refs_sha1 ON blob_refs (sha1);
"""


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX) and bool(SHA1.match(value[5:]))


def references(output: dict[str, Any]) -> Iterable[str]:
    """The blob hashes an output message refers to."""
    data = output.get("data")
    if isinstance(data, dict):
        for value in data.values():
            if is_reference(value):
                yield value[len(PREFIX) :]


class BlobStore:
    """Content-addressed store of output payloads (module docstring)."""

    def __init__(
        self, worker: StoreWorker, *, threshold: int = 8192, cache_bytes: int = 128 << 20
    ) -> None:
        self.worker = worker
        self.threshold = threshold
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._cached_size = 0
        self._pending: dict[str, tuple[str, bytes]] = {}
        self._pending_refs: set[tuple[str, str]] = set()
        self._flushing: asyncio.Task[None] | None = None
        #: the cache and the queues, which ``put`` may change from a worker thread
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # the last one seen running

    async def open(self) -> None:
        await self.worker.ensure_schema(DDL)

    def open_blocking(self) -> None:
        self.worker.ensure_schema_blocking(DDL)

    # -- putting ----------------------------------------------------------------------------

    def extract(self, output: dict[str, Any], doc: str | None = None) -> dict[str, Any]:
        """``output`` with its large binary payloads replaced by blob references."""
        data = output.get("data")
        if not isinstance(data, dict):
            return output
        changed: dict[str, Any] | None = None
        for mime, value in data.items():
            if mime not in BINARY_TYPES or not isinstance(value, str) or is_reference(value):
                continue
            if len(value) * 3 // 4 <= self.threshold:
                continue
            try:
                raw = base64.b64decode(value, validate=False)
            except (binascii.Error, ValueError):
                continue  # not base64: leave it as it is
            if len(raw) <= self.threshold:
                continue
            sha1 = self.put(raw, mime, doc)
            if changed is None:
                changed = dict(data)
            changed[mime] = PREFIX + sha1
        if changed is None:
            return output
        return {**output, "data": changed}

    def put(self, raw: bytes, mime: str, doc: str | None = None) -> str:
        """Store ``raw`` (queued, cached at once); returns its SHA1."""
        sha1 = hashlib.sha1(raw).hexdigest()
        with self._lock:
            if sha1 not in self._cache:
                self._remember(sha1, mime, raw)
                self._pending[sha1] = (mime, raw)
            if doc is not None:
                self._pending_refs.add((doc, sha1))
        self._schedule()
        return sha1

    def _remember(self, sha1: str, mime: str, raw: bytes) -> None:
        """Cache a blob (the caller holds the lock)."""
        self._cache[sha1] = (mime, raw)
        self._cache.move_to_end(sha1)
        self._cached_size += len(raw)
        while self._cached_size > self.cache_bytes and len(self._cache) > 1:
            _, (_, data) = self._cache.popitem(last=False)
            self._cached_size -= len(data)

    def _schedule(self) -> None:
        """Start a flush on the event loop unless one is running; from a worker thread, hand
        this to the loop (the last one seen, else the one of the ``anyio.to_thread`` caller)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._schedule)
            else:
                anyio.from_thread.run_sync(self._schedule)
            return
        self._loop = loop
        if self._flushing is None or self._flushing.done():
            self._flushing = loop.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending or self._pending_refs:
            with self._lock:
                blobs, self._pending = self._pending, {}
                refs, self._pending_refs = self._pending_refs, set()
            now = time.time()

            def write(
                conn: StoreConnection,
                blobs: dict[str, tuple[str, bytes]] = blobs,
                refs: set[tuple[str, str]] = refs,
                now: float = now,
            ) -> None:
                with transaction(conn):
                    conn.executemany(
                        "INSERT INTO blobs (sha1, mime, data, created) VALUES (?,?,?,?) "
                        "ON CONFLICT DO NOTHING",
                        [(sha1, mime, raw, now) for sha1, (mime, raw) in blobs.items()],
                    )
                    conn.executemany(
                        "INSERT INTO blob_refs (doc, sha1) VALUES (?,?) ON CONFLICT DO NOTHING",
                        list(refs),
                    )

            await self.worker.run(write)

    async def flushed(self) -> None:
        if self._pending or self._pending_refs:  # put on a thread, its flush not yet started
            self._schedule()
        while self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)

    def reference(self, doc: str, sha1s: Iterable[str]) -> None:
        """Record that ``doc`` refers to ``sha1s`` (e.g. blobs met while importing a file)."""
        with self._lock:
            self._pending_refs.update((doc, sha1) for sha1 in sha1s)
            pending = bool(self._pending_refs)
        if pending:
            self._schedule()

    # -- getting ----------------------------------------------------------------------------

    def cached(self, sha1: str) -> tuple[str, bytes] | None:
        """``(mime, bytes)`` if in memory (never touches the disk)."""
        with self._lock:
            item = self._cache.get(sha1)
            if item is not None:
                self._cache.move_to_end(sha1)
            return item

    async def get(self, sha1: str) -> tuple[str, bytes] | None:
        """``(mime, bytes)`` of a blob, or ``None`` if the store does not have it."""
        item = self.cached(sha1) or self._pending.get(sha1)
        if item is not None:
            return item
        row = await self.worker.run(
            lambda conn: conn.execute(
                "SELECT mime, data FROM blobs WHERE sha1 = ?", (sha1,)
            ).fetchone()
        )
        if row is None:
            return None
        item = (row[0], bytes(row[1]))
        with self._lock:
            self._remember(sha1, *item)
        return item

    async def prefetch(self, sha1s: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """The blobs (those the store has), also brought into the memory cache."""
        found: dict[str, tuple[str, bytes]] = {}
        for sha1 in set(sha1s):
            item = await self.get(sha1)
            if item is not None:
                found[sha1] = item
        return found

    def inline(
        self, output: dict[str, Any], source: dict[str, tuple[str, bytes]] | None = None
    ) -> dict[str, Any]:
        """``output`` with blob references replaced by base64 from the cache (or ``source``,
        a snapshot that code off the event loop can read safely).

        A blob that is not in memory gets a text placeholder (call ``prefetch`` first).
        """
        data = output.get("data")
        if not isinstance(data, dict) or not any(is_reference(v) for v in data.values()):
            return output
        inlined = dict(data)
        missing = []
        for mime, value in data.items():
            if not is_reference(value):
                continue
            sha1 = value[len(PREFIX) :]
            if source is not None:
                item = source.get(sha1)
            else:
                item = self.cached(sha1) or self._pending.get(sha1)
            if item is None:
                del inlined[mime]
                missing.append(f"{mime} {value}")
            else:
                inlined[mime] = base64.b64encode(item[1]).decode("ascii")
        if missing:
            note = "[output image missing from the blob store: " + ", ".join(missing) + "]"
            plain = inlined.get("text/plain")
            inlined["text/plain"] = f"{plain}\n{note}" if isinstance(plain, str) else note
        return {**output, "data": inlined}

    # -- collecting -------------------------------------------------------------------------

    async def forget(self, doc: str) -> None:
        """``doc`` and its history are gone: it no longer keeps blobs alive."""
        await self.flushed()

        def delete(conn: StoreConnection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM blob_refs WHERE doc = ?", (doc,))

        await self.worker.run(delete)

    async def collect(self, *, older_than: float = 3600) -> int:
        """Delete blobs that no document refers to and that are older than ``older_than`` s."""
        await self.flushed()
        cutoff = time.time() - older_than

        def delete(conn: StoreConnection) -> int:
            with transaction(conn):
                cursor = conn.execute(
                    "DELETE FROM blobs WHERE created < ? AND sha1 NOT IN "
                    "(SELECT sha1 FROM blob_refs)",
                    (cutoff,),
                )
                return cursor.rowcount

        removed = await self.worker.run(delete)
        return removed
