"""What one transaction of a ``SyncDB`` changed: the records, their fields, the text deltas;
read from the raw events of the transaction (``deep_changes``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, TypeAlias

from ..origin import Origin
from .ytypes import RawEvent, is_map_event, is_text_event, raw_map_keys

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


@dataclass
class DeepChanges:
    """What one batch of a deep observer of the records changed, by stored record key."""

    changes: dict[str, RecordChange] = field(default_factory=dict)
    #: records changed beyond their texts (a cached read of them is stale)
    rewritten: set[str] = field(default_factory=set)
    #: records whose string columns alone changed: stored key -> {column: its text, raw}
    typed: dict[str, dict[str, object]] = field(default_factory=dict)
    #: records whose fields were set to plain values (a cell's state, its position) or
    #: removed, and nothing else of them changed beyond their texts: stored key -> {field:
    #: its value as stored, ``REMOVED`` if removed} (a cached read of them is patched)
    plain: dict[str, dict[str, object]] = field(default_factory=dict)


#: in ``DeepChanges.plain``: the field was removed
REMOVED = object()
#: the types of the values a map entry holds as plain values (JSON's scalars; None too)
_PLAIN = (str, int, float, bool)


@lru_cache(maxsize=8192)
def decode_key(encoded: str) -> Key:
    """The primary-key tuple of a stored record key (remembered: every change decodes the key
    of every record it touches)."""
    return tuple(json.loads(encoded))


def deep_changes(events: Sequence[RawEvent], map_cols: frozenset[str]) -> DeepChanges:
    """The changes of a raw deep observer's batch on the records ``Map`` (``RawEvent``: only
    what is asked is read from the transaction, and nothing is wrapped)."""
    batch = DeepChanges()
    changes = batch.changes

    def change_for(encoded: str, action: Literal["add", "update", "delete"]) -> RecordChange:
        change = changes.get(encoded)
        if change is None:
            change = changes[encoded] = RecordChange(decode_key(encoded), action)
        elif action != "update":
            change.action = action
        return change

    for event in events:
        path = event.path
        if not path:
            for encoded, info in event.keys.items():
                batch.rewritten.add(encoded)
                if info["action"] == "delete":
                    change_for(encoded, "delete")
                    continue
                # added, or replaced by a new record Map: every field is new
                change = change_for(encoded, "add")
                fields = raw_map_keys(info.get("newValue"), event.transaction)
                if fields is not None:
                    change.fields.update(fields)
            continue
        # (the records and each record are maps: their path entries are keys, not indices)
        encoded = str(path[0])
        change = change_for(encoded, "update")
        if len(path) == 1:
            keys = event.keys
            change.fields.update(keys)
            change.replaced.update(keys)
            values = _plain_values(keys)
            if values is None:
                batch.rewritten.add(encoded)
            else:
                batch.plain.setdefault(encoded, {}).update(values)
            continue
        name = str(path[1])
        change.fields.add(name)
        text = is_text_event(event)
        if len(path) == 2 and text:
            # typing keeps the record cached: that text alone is read again
            batch.typed.setdefault(encoded, {})[name] = event.target
            change.text_deltas[name] = event.delta
            continue
        batch.rewritten.add(encoded)
        if name not in map_cols:
            continue
        if len(path) == 2:
            if is_map_event(event):
                change.entries.setdefault(name, set()).update(event.keys)
            continue
        entry = str(path[2])
        change.entries.setdefault(name, set()).add(entry)
        if len(path) == 4 and text:
            change.entry_text_deltas[(name, entry)] = event.delta
    return batch


def _plain_values(keys: dict[str, dict[str, Any]]) -> dict[str, object] | None:
    """The fields a record's own map event set, with their new values (``REMOVED``: removed),
    if each is a plain value; None if one is a shared type (a new text or map)."""
    values: dict[str, object] = {}
    for name, info in keys.items():
        if info["action"] == "delete":
            values[name] = REMOVED
            continue
        value = info.get("newValue")
        if value is not None and not isinstance(value, _PLAIN):
            return None
        values[name] = value
    return values
