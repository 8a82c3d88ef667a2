"""The generic synchronised record table."""

from .table import LOCAL, ChangeEvent, Origin, RecordChange, SyncDB

__all__ = ["LOCAL", "ChangeEvent", "Origin", "RecordChange", "SyncDB"]
