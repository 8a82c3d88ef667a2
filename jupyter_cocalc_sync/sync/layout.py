"""How a record's fields are stored in a ``SyncDB``'s ``Doc`` (the layout its module docstring
describes): string columns as ``Text``, map columns as ``Map`` s whose entries keep their text
field as a ``Text``, every other field a plain JSON value; and how a write changes what is
stored, in place where it can (a grown stream is an append, an unchanged value no change).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Map, Text

from .text import set_text
from .values import checked_from_crdt, same_json
from .ytypes import YMap


@dataclass(frozen=True)
class RecordLayout:
    """The columns of a table: which are texts, which maps, and the text field of each map's
    entries."""

    string_cols: frozenset[str]
    map_cols: frozenset[str]
    #: map column -> the field of its entries kept as a ``Text``
    text_fields: Mapping[str, str]

    def prelim(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A new record's fields as stored (a ``Map`` made of them integrates them)."""
        prelim: dict[str, Any] = {}
        for name, value in record.items():
            if value is None:
                continue
            if name in self.string_cols:
                prelim[name] = Text(value)
            elif name in self.map_cols:
                prelim[name] = Map(
                    {k: self._entry(name, v) for k, v in value.items() if v is not None}
                )
            else:
                prelim[name] = value
        return prelim

    def _entry(self, column: str, value: Any) -> Any:
        """An entry of a map column as stored: with its text field as a ``Text``."""
        text_field = self.text_fields.get(column)
        if text_field is None or not isinstance(value, dict):
            return value
        text = value.get(text_field)
        if not isinstance(text, str):
            return value
        return Map({**value, text_field: Text(text)})

    def _set_entry(self, column: str, entries: YMap, key: str, value: Any) -> None:
        existing = entries.get(key)
        text_field = self.text_fields.get(column)
        if (
            isinstance(existing, Map)
            and text_field is not None
            and isinstance(value, dict)
            and isinstance(value.get(text_field), str)
            and isinstance(existing.get(text_field), Text)
        ):
            # the same kind of entry: change it in place (a grown stream is an append)
            for name in set(existing.keys()).difference(value):
                del existing[name]
            for name, sub in value.items():
                if name == text_field:
                    set_text(existing[name], sub)
                elif not same_json(checked_from_crdt(existing.get(name)), sub):
                    existing[name] = sub
            return
        if not same_json(checked_from_crdt(existing), value):
            entries[key] = self._entry(column, value)

    def set_field(self, current: YMap, name: str, value: Any) -> None:
        """Write ``value`` into the field ``name`` of the stored record ``current`` (``None``
        removes it; a map column's ``None`` entries remove those entries)."""
        existing = current.get(name)
        if value is None:
            if name in current:
                del current[name]
        elif name in self.string_cols:
            if isinstance(existing, Text):
                set_text(existing, value)
            else:
                current[name] = Text(value)
        elif name in self.map_cols:
            if isinstance(existing, Map):
                for sub, subvalue in value.items():
                    if subvalue is None:
                        if sub in existing:
                            del existing[sub]
                    else:
                        self._set_entry(name, existing, sub, subvalue)
            else:
                current[name] = Map(
                    {k: self._entry(name, v) for k, v in value.items() if v is not None}
                )
        elif isinstance(value, dict) and isinstance(existing, dict):
            merged = dict(existing)
            for sub, subvalue in value.items():
                if subvalue is None:
                    merged.pop(sub, None)
                else:
                    merged[sub] = subvalue
            if not same_json(merged, existing):
                current[name] = merged
        elif not same_json(existing, value):
            current[name] = value
