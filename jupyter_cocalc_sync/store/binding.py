"""``LoggedTable``: one ``SyncDB`` bound to the change log under a document id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..origin import STORE, Origin, OriginKind
from ..sync.table import SyncDB
from .changelog import ChangeLog

#: ``listener(update, origin, durable)``: an update was handed to the log; ``durable``
#: resolves to its version once it is on disk
LoggedListener = Callable[[bytes, Origin, "asyncio.Future[int]"], None]


class LoggedTable:
    """Appends every commit and every peer update of ``db`` to ``changelog``.

    ``await commit()`` returns the new version once it is on disk, so a caller that answers a
    client after it keeps the promise that every change a client has seen survives
    ``kill -9``. Whatever sends updates out subscribes with ``on_logged`` and sends each one
    only once its ``durable`` future has resolved.
    """

    def __init__(self, db: SyncDB, changelog: ChangeLog, doc_id: str) -> None:
        self.db = db
        self.changelog = changelog
        self.doc_id = doc_id
        self._version = 0
        self._last: asyncio.Future[int] | None = None
        self._logged: list[LoggedListener] = []
        self._unsubscribe = db.on_update(self._on_update)

    async def load(self) -> bool:
        """Replay the log into the table; returns whether the document had any history."""
        state, version = await self.changelog.load(self.doc_id)
        if state is None:
            return False
        self.db.apply_update(state, STORE)
        self._version = version
        return True

    @property
    def version(self) -> int:
        """The latest version on disk: the latest write's own as soon as its future resolved.
        (``_appended`` runs a loop turn after that: a reader in between, such as ``durable``
        right after a write committed on the loop's thread, would otherwise get an older
        version than the log has, and read the log as of it.)"""
        last = self._last
        if last is not None and last.done() and not last.cancelled() and last.exception() is None:
            self._version = max(self._version, last.result())
        return self._version

    def on_logged(self, listener: LoggedListener) -> Callable[[], None]:
        """Call ``listener(update, origin, durable)`` for every update handed to the log."""
        self._logged.append(listener)
        return lambda: self._logged.remove(listener) if listener in self._logged else None

    def _on_update(self, update: bytes, origin: Origin) -> None:
        if origin.kind is OriginKind.STORE:  # replayed from the log: it is there already
            return
        future = self.changelog.append(self.doc_id, update, origin.author)
        future.add_done_callback(self._appended)
        self._last = future
        for listener in list(self._logged):
            listener(update, origin, future)

    def _appended(self, future: asyncio.Future[int]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._version = max(self._version, future.result())

    def commit(self, origin: Origin) -> asyncio.Future[int] | None:
        """Commit ``db`` as one change by ``origin``; the future resolves once it is
        durable."""
        return self._last if self.db.commit(origin) else None

    def barrier(self) -> asyncio.Future[int] | None:
        """The latest write handed to the log: once it is durable, everything before it is."""
        return self._last

    def check_writable(self) -> None:
        """Raise ``StoreUnavailableError`` while this document's writes fail."""
        self.changelog.check_writable(self.doc_id)

    async def durable(self) -> int:
        """Wait until every change so far is on disk; returns the latest version."""
        # until the latest write *when we resume* is durable: a reader that continues
        # synchronously after this sees nothing that is not on disk
        while (last := self._last) is not None and not last.done():
            await asyncio.shield(last)
        if last is not None:
            last.result()  # a write that failed for good raises here
        return self.version

    def close(self) -> None:
        self._unsubscribe()
        self._logged.clear()
