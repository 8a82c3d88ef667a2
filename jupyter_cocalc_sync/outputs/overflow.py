"""``MoreOutputStore``: what a cell printed past its visible limits, on disk.

Past ``max_output_length`` / ``max_output_messages`` the visible output ends with a
``{"more_output": true}`` marker and the rest of the messages come here, in order. Stream text
is kept in chunks of at most ``CHUNK`` characters, so a million printed lines are a few hundred
rows, not a million.

Each cell may keep ``max_bytes`` of overflow: the first half (the head) and, after that, the
most recent half (the tail: older tail rows are dropped as new ones come). Reading gives the
head, then the tail, with how many entries (``truncated``) and characters (``discarded``) were
cut from between them. Nothing is dropped without being counted. ``read_page`` reads a few
entries at a time, for a client that shows the overflow page by page.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio

from ..store.protocol import StoreConnection, StoreWorker, transaction

CHUNK = 65536

DDL = """
CREATE TABLE IF NOT EXISTS overflow (
    doc TEXT NOT NULL,
    cell TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (doc, cell, seq)
);
CREATE TABLE IF NOT EXISTS overflow_gaps (
    doc TEXT NOT NULL,
    cell TEXT NOT NULL,
    after_seq INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    discarded INTEGER NOT NULL,
    PRIMARY KEY (doc, cell)
) WITHOUT ROWID;
"""


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _is_stream(message: dict[str, Any], name: str | None = None) -> bool:
    return (
        message.get("output_type") == "stream"
        and isinstance(message.get("text"), str)
        and (name is None or message.get("name") == name)
    )


def _assemble(rows: list[tuple[int, Any]], gap: Any) -> dict[str, Any]:
    """``MoreOutputStore.read``'s answer from the overflow rows and the gap (if any)."""
    after, truncated, discarded = gap if gap else (0, 0, 0)
    messages: list[dict[str, Any]] = []
    texts: list[list[str]] = []  # per message: the stream texts to join (once, at the end)
    head_count = 0
    previous_seq = None
    for seq, message in rows:
        crossing = truncated and previous_seq is not None and previous_seq <= after < seq
        if crossing:
            head_count = len(messages)
        last = messages[-1] if messages else None
        if (
            last is not None
            and not crossing
            and _is_stream(message)
            and _is_stream(last, message.get("name"))
        ):
            texts[-1].append(message["text"])
        else:
            messages.append(message)
            texts.append([message["text"]] if _is_stream(message) else [])
        previous_seq = seq
    if not truncated:
        head_count = len(messages)
    joined = [
        {**message, "text": "".join(parts)} if len(parts) > 1 else message
        for message, parts in zip(messages, texts, strict=True)
    ]
    return {
        "messages": joined,
        "truncated": truncated,
        "discarded": discarded,
        "head_count": head_count,
    }


def _weight(message: dict[str, Any]) -> int:
    """Characters a message counts for when it is dropped: its text, or its JSON."""
    return len(message["text"]) if _is_stream(message) else len(dumps(message))


@dataclass
class OverflowPage:
    """Entries ``offset`` … of a cell's overflow (``MoreOutputStore.read_page``)."""

    #: (seq, message) of the page's entries, in order
    rows: list[tuple[int, Any]]
    offset: int
    #: entries kept, and their size (bytes of their JSON)
    total: int
    bytes: int
    page_bytes: int
    #: entries before the dropped part (the head: all of them when nothing was dropped),
    #: and what was dropped
    head_entries: int
    truncated: int
    discarded: int


@dataclass
class _Entry:
    seq: int
    message: dict[str, Any]
    size: int
    written: bool = False


class OverflowWriter:
    """Appends one cell's overflow (see the module docstring); ``finish`` when the run ends."""

    def __init__(self, store: MoreOutputStore, doc: str, cell: str, max_bytes: int) -> None:
        self.store = store
        self.doc = doc
        self.cell = cell
        self.half = max(1, max_bytes // 2)
        self.head_bytes = 0
        self.head_last: int | None = None  # seq of the last head row
        self.tail: deque[_Entry] = deque()
        self.tail_bytes = 0
        self.truncated = 0
        self.discarded = 0
        self.messages = 0
        self._seq = 0
        self._open: _Entry | None = None  # the stream entry still growing
        self._inserts: dict[int, _Entry] = {}
        self._deletes: list[int] = []
        self._flushing: asyncio.Task[None] | None = None
        self._reset = True  # the first write replaces any older overflow of the cell

    def add(self, message: dict[str, Any]) -> None:
        """Append one output message (stream text is chunked and coalesced)."""
        self.messages += 1
        if _is_stream(message):
            text = message["text"]
            while text:
                entry = self._open
                if entry is not None and _is_stream(entry.message, message.get("name")):
                    room = CHUNK - len(entry.message["text"])
                    if room > 0:
                        piece, text = text[:room], text[room:]
                        entry.message = {**entry.message, "text": entry.message["text"] + piece}
                        self._resize(entry)
                        continue
                piece, text = text[:CHUNK], text[CHUNK:]
                self._open = self._append({**message, "text": piece})
        else:
            self._open = None
            self._append(dict(message))
        self._schedule()

    def _append(self, message: dict[str, Any]) -> _Entry:
        self._seq += 1
        entry = _Entry(self._seq, message, len(dumps(message)))
        head_open = self.head_last is None or self.head_last == entry.seq - 1
        if head_open and (self.head_bytes + entry.size <= self.half or self.head_bytes == 0):
            self.head_bytes += entry.size
            self.head_last = entry.seq
            self._inserts[entry.seq] = entry
            return entry
        self.tail.append(entry)
        self.tail_bytes += entry.size
        self._inserts[entry.seq] = entry
        self._trim()
        return entry

    def _resize(self, entry: _Entry) -> None:
        size = len(dumps(entry.message))
        if entry.seq == self.head_last:
            self.head_bytes += size - entry.size
        else:
            self.tail_bytes += size - entry.size
        entry.size = size
        self._inserts[entry.seq] = entry
        if entry.seq == self.head_last and self.head_bytes > self.half:
            self._open = None  # the head is full: the next text starts the tail
        self._trim()

    def _trim(self) -> None:
        while self.tail_bytes > self.half and len(self.tail) > 1:
            old = self.tail.popleft()
            self.tail_bytes -= old.size
            self.truncated += 1
            self.discarded += _weight(old.message)
            if self._inserts.pop(old.seq, None) is None or old.written:
                self._deletes.append(old.seq)
            if self._open is old:
                self._open = None

    def _schedule(self) -> None:
        if len(self._inserts) < 4 and not self._deletes:
            return  # let a few entries gather (the open one keeps growing)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        """Write what is pending (called in the background, and by ``finish``)."""
        while self._inserts or self._deletes:
            inserts = [(e.seq, dumps(e.message)) for e in self._inserts.values()]
            for entry in self._inserts.values():
                entry.written = True
            deletes, self._deletes = self._deletes, []
            self._inserts = {}
            gap = (self.head_last or 0, self.truncated, self.discarded)
            reset, self._reset = self._reset, False
            await self.store._write(self.doc, self.cell, inserts, deletes, gap, reset=reset)

    async def finish(self) -> None:
        while self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)
        await self.flush()


class MoreOutputStore:
    """The overflow of every cell (module docstring)."""

    def __init__(self, worker: StoreWorker, *, max_bytes: int) -> None:
        self.worker = worker
        self.max_bytes = max_bytes

    async def open(self) -> None:
        await self.worker.ensure_schema(DDL)

    def open_blocking(self) -> None:
        self.worker.ensure_schema_blocking(DDL)

    def writer(self, doc: str, cell: str) -> OverflowWriter:
        return OverflowWriter(self, doc, cell, self.max_bytes)

    async def _write(
        self,
        doc: str,
        cell: str,
        inserts: list[tuple[int, str]],
        deletes: list[int],
        gap: tuple[int, int, int],
        *,
        reset: bool = False,
    ) -> None:
        def write(conn: StoreConnection) -> None:
            with transaction(conn):
                if reset:
                    conn.execute("DELETE FROM overflow WHERE doc = ? AND cell = ?", (doc, cell))
                conn.executemany(
                    "INSERT INTO overflow (doc, cell, seq, data) VALUES (?,?,?,?) "
                    "ON CONFLICT (doc, cell, seq) DO UPDATE SET data = excluded.data",
                    [(doc, cell, seq, data) for seq, data in inserts],
                )
                conn.executemany(
                    "DELETE FROM overflow WHERE doc = ? AND cell = ? AND seq = ?",
                    [(doc, cell, seq) for seq in deletes],
                )
                conn.execute(
                    "INSERT INTO overflow_gaps (doc, cell, after_seq, truncated, discarded) "
                    "VALUES (?,?,?,?,?) ON CONFLICT (doc, cell) DO UPDATE SET "
                    "after_seq = excluded.after_seq, truncated = excluded.truncated, "
                    "discarded = excluded.discarded",
                    (doc, cell, *gap),
                )

        await self.worker.run(write)

    async def clear(self, doc: str, cell: str) -> None:
        def delete(conn: StoreConnection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM overflow WHERE doc = ? AND cell = ?", (doc, cell))
                conn.execute("DELETE FROM overflow_gaps WHERE doc = ? AND cell = ?", (doc, cell))

        await self.worker.run(delete)

    async def read(self, doc: str, cell: str) -> dict[str, Any]:
        """``{"messages", "truncated", "discarded", "head_count"}``: head then tail (the first
        ``head_count`` messages), consecutive streams re-joined except across the gap."""

        def read(conn: StoreConnection) -> tuple[list[tuple[int, Any]], Any]:
            rows = [
                (seq, json.loads(data))  # decoded here, off the event loop
                for seq, data in conn.execute(
                    "SELECT seq, data FROM overflow WHERE doc = ? AND cell = ? ORDER BY seq",
                    (doc, cell),
                )
            ]
            gap = conn.execute(
                "SELECT after_seq, truncated, discarded FROM overflow_gaps "
                "WHERE doc = ? AND cell = ?",
                (doc, cell),
            ).fetchone()
            return rows, gap

        rows, gap = await self.worker.run(read)
        # joining megabytes of stream text is CPU work: not on the event loop, and not on the
        # SQLite thread either (every document's writes wait for it)
        return await anyio.to_thread.run_sync(_assemble, rows, gap)

    async def read_page(self, doc: str, cell: str, offset: int, limit: int) -> OverflowPage:
        """Entries ``offset`` to ``offset + limit`` of a cell's overflow (each at most
        ``CHUNK`` characters of stream text, or one other message), with the totals."""

        # the size in bytes without decoding the text (a count of characters would read it all)
        data_bytes = (
            "octet_length(data)"
            if self.worker.dialect == "postgresql"
            else "length(CAST(data AS BLOB))"
        )

        def read(conn: StoreConnection) -> OverflowPage:
            where = "WHERE doc = ? AND cell = ?"
            total, size = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM({data_bytes}), 0) FROM overflow {where}",
                (doc, cell),
            ).fetchone()
            raw = conn.execute(
                f"SELECT seq, data FROM overflow {where} ORDER BY seq LIMIT ? OFFSET ?",
                (doc, cell, limit, offset),
            ).fetchall()
            gap = conn.execute(
                f"SELECT after_seq, truncated, discarded FROM overflow_gaps {where}", (doc, cell)
            ).fetchone()
            after, truncated, discarded = gap if gap else (0, 0, 0)
            head = total
            if truncated:
                (head,) = conn.execute(
                    f"SELECT COUNT(*) FROM overflow {where} AND seq <= ?", (doc, cell, after)
                ).fetchone()
            return OverflowPage(
                rows=[(seq, json.loads(data)) for seq, data in raw],
                offset=offset,
                total=total,
                bytes=size,
                page_bytes=sum(len(data.encode()) for _, data in raw),
                head_entries=head,
                truncated=truncated,
                discarded=discarded,
            )

        return await self.worker.run(read)

    async def forget(self, doc: str) -> None:
        def delete(conn: StoreConnection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM overflow WHERE doc = ?", (doc,))
                conn.execute("DELETE FROM overflow_gaps WHERE doc = ?", (doc,))

        await self.worker.run(delete)
