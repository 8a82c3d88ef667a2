"""The generic synchronised record table (SPEC section 3)."""

from .table import LOCAL, ChangeEvent, RecordChange, SyncDB

__all__ = ["LOCAL", "ChangeEvent", "RecordChange", "SyncDB"]
