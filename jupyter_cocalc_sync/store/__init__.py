"""Durable storage: the SQLite database, the change log and its history."""

from .binding import LoggedTable
from .changelog import ChangeLog, Version
from .sqlite import SQLiteWorker

__all__ = ["ChangeLog", "LoggedTable", "SQLiteWorker", "Version"]
