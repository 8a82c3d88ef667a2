"""Opening the server's store: SQLite at ``store_path`` or PostgreSQL at ``store_url``.

The rest of the server gets a ``StoreWorker`` and does not know which backend it has.
Whatever keeps the store from being used (another server holds it, a filesystem it must not
run on, a database that cannot be reached) is one ``StoreInUseError`` or
``StoreLocationError`` with a message for the operator: the server stops rather than start
without the extension.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import StoreLocationError
from .location import NetworkPolicy, place_store
from .lock import StoreLock
from .protocol import DATABASE_ERRORS, StoreWorker
from .sqlite import SQLiteWorker


@dataclass
class OpenStore:
    worker: StoreWorker
    #: the SQLite store's one-writer lock (PostgreSQL's is an advisory lock of the worker's)
    lock: StoreLock | None = None
    #: one line for the log when the store runs in a degraded mode (see ``location.py``)
    warning: str | None = None

    def close(self) -> None:
        self.worker.close()
        if self.lock is not None:
            self.lock.release()


def open_store(
    *,
    store_path: str,
    store_url: str = "",
    on_network_filesystem: NetworkPolicy = "rollback-journal",
    lock_wait: float = 30.0,
) -> OpenStore:
    """Take the store for this server (raises ``StoreInUseError`` / ``StoreLocationError``)."""
    if store_url:
        return OpenStore(_open_postgres(store_url, lock_wait))
    placement = place_store(store_path, on_network_filesystem=on_network_filesystem)
    lock = StoreLock(store_path)
    lock.acquire()
    worker = SQLiteWorker(store_path, journal=placement.journal)
    return OpenStore(worker, lock, placement.warning)


def _open_postgres(url: str, lock_wait: float) -> StoreWorker:
    try:
        from .postgres import PostgresWorker
    except ImportError as e:
        raise StoreLocationError(
            f"c.CocalcSync.store_url is a PostgreSQL database, but psycopg is not installed "
            f"({e}): pip install 'jupyter-cocalc-sync[postgres]'"
        ) from e
    worker = PostgresWorker(url, lock_wait=lock_wait)
    try:
        worker.open_blocking()
    except DATABASE_ERRORS as e:
        worker.close()
        raise StoreLocationError(
            f"the store {worker.describe()} cannot be opened: {e}".strip()
        ) from e
    except BaseException:
        worker.close()
        raise
    return worker
