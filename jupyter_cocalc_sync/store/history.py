"""Squashing history: what keeps the change log proportional to what a notebook holds.

* When a cell's run ends, the versions its outputs went through (one per flush: a progress
  bar redrawn ten thousand times) are squashed into one: history keeps one version per run.
* Retention: versions older than ``keep_all`` seconds are squashed to one per hour, and those
  older than ``keep_hourly`` seconds to one per day.

A squash replaces consecutive versions ``first … last`` by one update at ``last`` that takes
the state at ``first - 1`` to the state at ``last``. It is built from a garbage-collected
replay in the replay process (deleted text is kept as its length, not its content), and the
log writer only runs the short transaction that swaps the rows. Versions of other authors in
between, the version that is in the file (the base of out-of-band merges) and the versions
another document's history starts from (``bases.py``) are never squashed away. Any retained
version can still be read and reverted to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .bases import BaseInput, base_versions
from .changelog import ChangeLog
from .log_rows import read_base_input, read_state, read_updates
from .protocol import StoreConnection, transaction
from .replay import squashed

log = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class Retention:
    """How much history is kept (seconds; 0 keeps everything at that resolution forever)."""

    keep_all: float = 7 * DAY
    keep_hourly: float = 30 * DAY


@dataclass(frozen=True)
class _Range:
    first: int
    last: int
    count: int
    author: str | None


class HistorySquasher:
    """Squashes ranges of a change log's versions (module docstring)."""

    def __init__(self, changelog: ChangeLog, retention: Retention | None = None) -> None:
        self.changelog = changelog
        self.worker = changelog.worker
        self.retention = retention or Retention()

    async def squash_versions(self, doc: str, versions: Iterable[int]) -> int:
        """Squash each run of consecutive retained versions that are all in ``versions``;
        returns how many versions were removed."""
        wanted = sorted(set(versions))
        if len(wanted) < 2:
            return 0
        await self.changelog.flushed()
        ranges = await self.worker.run(lambda conn: self._ranges_of(conn, doc, wanted))
        removed = 0
        for squash_range in ranges:
            removed += await self._squash(doc, squash_range)
        return removed

    async def apply_retention(self, now: float | None = None) -> int:
        """Thin out old history of every document; returns how many versions were removed."""
        if not self.retention.keep_all:
            return 0
        now = time.time() if now is None else now
        await self.changelog.flushed()
        buckets = await self.worker.run(lambda conn: self._old_buckets(conn, now))
        removed = 0
        for doc, versions in buckets:
            removed += await self.squash_versions(doc, versions)
        if removed:
            log.info("history retention removed %d old versions", removed)
        return removed

    # -- reading (worker thread) ------------------------------------------------------------

    def _old_buckets(self, conn: StoreConnection, now: float) -> list[tuple[str, list[int]]]:
        """``(doc, versions of one hour or day)`` for every bucket holding two or more."""
        keep_all, keep_hourly = self.retention.keep_all, self.retention.keep_hourly
        rows = conn.execute(
            "SELECT doc, version, time FROM changes WHERE time < ? ORDER BY doc, version",
            (now - keep_all,),
        ).fetchall()
        buckets: dict[tuple[str, int, int], list[int]] = {}
        for doc, version, stamp in rows:
            daily = keep_hourly and stamp < now - keep_hourly
            size = DAY if daily else HOUR
            buckets.setdefault((doc, int(daily), int(stamp // size)), []).append(version)
        return [(key[0], v) for key, v in buckets.items() if len(v) > 1]

    @staticmethod
    def _ranges_of(conn: StoreConnection, doc: str, wanted: list[int]) -> list[_Range]:
        wanted_set = set(wanted)
        saved = conn.execute("SELECT version FROM saves WHERE doc = ?", (doc,)).fetchone()
        # the saved version, and the versions bases are built from, stay readable
        kept = {saved[0]} if saved else set()
        kept |= base_versions(conn, doc)
        rows = conn.execute(
            "SELECT version, author FROM changes WHERE doc = ? AND version BETWEEN ? AND ? "
            "ORDER BY version",
            (doc, wanted[0], wanted[-1]),
        ).fetchall()
        ranges: list[_Range] = []
        run: list[tuple[int, str | None]] = []

        def close_run() -> None:
            if len(run) > 1:
                authors = sorted({a for _, a in run if a})
                ranges.append(_Range(run[0][0], run[-1][0], len(run), ", ".join(authors) or None))
            run.clear()

        for version, author in rows:
            if version not in wanted_set:
                close_run()
                continue
            run.append((version, author))
            if version in kept:
                close_run()  # it stays readable: it ends a range
        close_run()
        return ranges

    # -- squashing --------------------------------------------------------------------------

    async def _squash(self, doc: str, squash_range: _Range) -> int:
        first, last = squash_range.first, squash_range.last

        def read(
            conn: StoreConnection,
        ) -> tuple[bytes | None, list[bytes], list[bytes], BaseInput | None]:
            _, snapshot, before = read_state(conn, doc, first - 1)
            inside = read_updates(conn, doc, first - 1, last)
            return snapshot, before, inside, read_base_input(conn, doc)

        snapshot, before, inside, base = await self.worker.run(read)
        if len(inside) != squash_range.count:
            return 0
        update = await self.changelog.replay.run(squashed, snapshot, before, inside, base)

        def write(conn: StoreConnection) -> int:
            with transaction(conn):
                count: int = conn.execute(
                    "SELECT COUNT(*) FROM changes WHERE doc = ? AND version BETWEEN ? AND ?",
                    (doc, first, last),
                ).fetchone()[0]
                if count != squash_range.count:
                    return 0  # squashed meanwhile by someone else
                conn.execute(
                    "DELETE FROM changes WHERE doc = ? AND version >= ? AND version < ?",
                    (doc, first, last),
                )
                conn.execute(
                    "UPDATE changes SET data = ?, author = ? WHERE doc = ? AND version = ?",
                    (update, squash_range.author, doc, last),
                )
                conn.execute(
                    "DELETE FROM snapshots WHERE doc = ? AND version >= ? AND version < ?",
                    (doc, first, last),
                )
            return count - 1

        return await self.worker.run(write)
