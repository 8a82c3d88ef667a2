"""``ResultCache``: stateless results in the store, by request hash, with an expiry."""

from __future__ import annotations

import json
import time
from typing import Any

from ..store.protocol import StoreConnection, StoreWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS stateless_results (
    key TEXT PRIMARY KEY,
    outputs TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS stateless_results_created ON stateless_results (created);
"""

#: expired rows are deleted at most this often (seconds), by a write
PURGE_INTERVAL = 60.0


class ResultCache:
    """Outputs of finished stateless runs, kept ``ttl`` seconds (0: nothing is kept)."""

    def __init__(self, worker: StoreWorker, ttl: float) -> None:
        self.worker = worker
        self.ttl = ttl
        self._last_purge = 0.0

    def open_blocking(self) -> None:
        self.worker.ensure_schema_blocking(SCHEMA)

    async def get(self, key: str) -> list[dict[str, Any]] | None:
        if self.ttl <= 0:
            return None
        oldest = time.time() - self.ttl

        def read(conn: StoreConnection) -> str | None:
            row = conn.execute(
                "SELECT outputs FROM stateless_results WHERE key = ? AND created >= ?",
                (key, oldest),
            ).fetchone()
            return row[0] if row else None

        text = await self.worker.run(read)
        return None if text is None else json.loads(text)

    async def put(self, key: str, outputs: list[dict[str, Any]]) -> None:
        if self.ttl <= 0:
            return
        now = time.time()
        text = json.dumps(outputs, ensure_ascii=False)
        purge = now - self._last_purge > PURGE_INTERVAL
        if purge:
            self._last_purge = now
        oldest = now - self.ttl

        def write(conn: StoreConnection) -> None:
            conn.execute(
                "INSERT INTO stateless_results (key, outputs, created) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET outputs = excluded.outputs, "
                "created = excluded.created",
                (key, text, now),
            )
            if purge:
                conn.execute("DELETE FROM stateless_results WHERE created < ?", (oldest,))

        await self.worker.run(write)
