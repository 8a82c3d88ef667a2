"""``LoggedTable``: one ``SyncDB`` bound to the change log under a document id."""

from __future__ import annotations

import asyncio
from typing import Any

from ..sync.table import LOCAL, SyncDB
from .changelog import ChangeLog

#: Origin of updates replayed from the log (they are not logged again).
STORE = "store"


def author_of(origin: Any) -> str | None:
    """The author recorded for a change made by ``origin`` (a peer has an ``author``)."""
    return getattr(origin, "author", None)


class LoggedTable:
    """Appends every commit and every peer update of ``db`` to ``changelog``.

    ``await commit()`` returns the new version once it is on disk, so a caller that answers a
    client after it has the guarantee of SPEC section 4: every change a client has seen
    survives ``kill -9``.
    """

    def __init__(self, db: SyncDB, changelog: ChangeLog, doc_id: str) -> None:
        self.db = db
        self.changelog = changelog
        self.doc_id = doc_id
        self.version = 0
        self._author: str | None = None
        self._last: asyncio.Future[int] | None = None
        self._unsubscribe = db.on_update(self._on_update)

    async def load(self) -> bool:
        """Replay the log into the table; returns whether the document had any history."""
        state, version = await self.changelog.load(self.doc_id)
        if state is None:
            return False
        self.db.apply_update(state, STORE)
        self.version = version
        return True

    def _on_update(self, update: bytes, origin: Any) -> None:
        if origin == STORE:
            return
        author = self._author if origin == LOCAL else author_of(origin)
        future = self.changelog.append(self.doc_id, update, author)
        future.add_done_callback(self._appended)
        self._last = future

    def _appended(self, future: asyncio.Future[int]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.version = max(self.version, future.result())

    def commit(self, author: str | None = None) -> asyncio.Future[int] | None:
        """Commit ``db`` as one change by ``author``; the future resolves once it is durable."""
        self._author = author
        try:
            committed = self.db.commit()
        finally:
            self._author = None
        return self._last if committed else None

    def pending(self) -> asyncio.Future[int] | None:
        """The latest write not yet on disk (None when everything is)."""
        last = self._last
        return None if last is None or last.done() else last

    async def durable(self) -> int:
        """Wait until every change so far is on disk; returns the latest version."""
        last = self._last
        if last is not None:
            await asyncio.shield(last)
        return self.version

    def close(self) -> None:
        self._unsubscribe()
