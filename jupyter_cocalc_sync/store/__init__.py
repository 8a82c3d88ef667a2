"""Durable storage: the store (SQLite or PostgreSQL), the change log and its history."""

from .binding import LoggedTable
from .changelog import ChangeLog, Version
from .protocol import STORE_ERRORS, StoreWorker
from .sqlite import SQLiteWorker

__all__ = [
    "STORE_ERRORS",
    "ChangeLog",
    "LoggedTable",
    "SQLiteWorker",
    "StoreWorker",
    "Version",
]
