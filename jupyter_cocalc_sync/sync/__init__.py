"""The generic synchronised record table (SPEC section 3)."""

from .table import LOCAL, ChangeEvent, Origin, RecordChange, SyncDB

__all__ = ["LOCAL", "ChangeEvent", "Origin", "RecordChange", "SyncDB"]
