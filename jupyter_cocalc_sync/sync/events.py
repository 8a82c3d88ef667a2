"""What one transaction of a ``SyncDB`` changed: the records, their fields, the text deltas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ..origin import Origin

#: a record's primary-key values (strings or integers), in the table's key order
Key: TypeAlias = tuple[str | int, ...]
#: a pycrdt ``TextEvent.delta``: ``{"retain": n}``, ``{"delete": n}``, ``{"insert": text}``
Delta: TypeAlias = list[dict[str, Any]]


@dataclass
class RecordChange:
    """How one record changed in one transaction."""

    key: Key
    action: Literal["add", "update", "delete"]
    #: fields whose value changed (``add``: every field of the new record)
    fields: set[str] = field(default_factory=set)
    #: string column -> Yjs delta against the previous text (UTF-8 byte offsets)
    text_deltas: dict[str, Delta] = field(default_factory=dict)
    #: fields given a new value as a whole (a map column replaced, not edited)
    replaced: set[str] = field(default_factory=set)
    #: map column -> keys of its entries that were set, changed or removed
    entries: dict[str, set[str]] = field(default_factory=dict)
    #: (map column, entry key) -> Yjs delta of the entry's text field
    entry_text_deltas: dict[tuple[str, str], Delta] = field(default_factory=dict)


@dataclass
class ChangeEvent:
    """The records changed by one transaction, and who made it."""

    origin: Origin
    changes: dict[Key, RecordChange]
    #: made through this process's ``set``/``delete`` (committed later), not a peer's update
    local: bool
