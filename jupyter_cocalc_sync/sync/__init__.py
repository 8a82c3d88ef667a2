"""The generic synchronised record table."""

from ..origin import Origin, OriginKind
from .table import ChangeEvent, RecordChange, SyncDB

__all__ = ["ChangeEvent", "Origin", "OriginKind", "RecordChange", "SyncDB"]
