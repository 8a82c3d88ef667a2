"""How a record's fields are stored in a ``SyncDB``'s ``Doc`` (the layout its module docstring
describes): string columns as ``Text``, map columns as ``Map`` s whose entries keep their text
field as a ``Text``, every other field a plain JSON value; and how a write changes what is
stored, in place where it can (a grown stream is an append, an unchanged value no change),
told by the record as the table last read it when it has that (``known``: the document is
then read only for the map whose entries change), and what the record then reads back as
(``written``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Map, Text

from .text import set_text
from .values import checked_from_crdt, read_back, same_json
from .ytypes import YMap

#: ``known`` of a field that the stored record lacks
ABSENT = object()
#: ``known`` of a field whose stored value was not read: it is read from the document
NOT_READ = object()


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

    def _set_entry(
        self,
        column: str,
        entries: YMap,
        key: str,
        value: Any,
        *,
        replace: bool = False,
        known: Any = NOT_READ,
    ) -> None:
        """Write the entry ``key`` of a map column; ``replace``: the column is written as a
        whole (a run's new outputs), ``known``: the entry as stored, when the caller knows
        it."""
        existing = entries.get(key)
        text_field = self.text_fields.get(column)
        if (
            isinstance(existing, Map)
            and text_field is not None
            and isinstance(value, dict)
            and isinstance(value.get(text_field), str)
            and isinstance(existing.get(text_field), Text)
        ):
            if replace and not _grows(
                checked_from_crdt(existing) if known is NOT_READ else known, value, text_field
            ):
                # a new output where another was (a run's first): made anew, not an edit of
                # the old text into it (a diff of two unrelated outputs on the run's path)
                entries[key] = self._entry(column, value)
                return
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

    def unchanged(self, name: str, value: Any, known: Any, *, replace: bool = False) -> bool:
        """Whether ``set_field`` would leave the field as it is, by ``known``: its value as the
        table last read it (``ABSENT``: the record lacks it). A string column is not told (a
        ``Text`` may be edited in place, ahead of what the table read): it is read."""
        if name in self.string_cols:
            return False
        if value is None or known is ABSENT:
            return value is None and known is ABSENT
        if name in self.map_cols:
            return (
                isinstance(known, dict)
                and isinstance(value, dict)
                and not (replace and known.keys() - value.keys())
                and all(_same_entry(known, sub, subvalue) for sub, subvalue in value.items())
            )
        if isinstance(value, dict) and isinstance(known, dict):
            return all(_same_entry(known, sub, subvalue) for sub, subvalue in value.items())
        return same_json(known, value)

    def set_field(
        self,
        current: YMap,
        name: str,
        value: Any,
        *,
        replace: bool = False,
        known: Any = NOT_READ,
    ) -> bool:
        """Write ``value`` into the field ``name`` of the stored record ``current`` (``None``
        removes it; a map column's ``None`` entries remove those entries, and, ``replace``,
        the entries ``value`` lacks: its entries replace the map's in place, an equal one is
        no change). ``known``: the field's value as stored, when the caller knows it
        (``ABSENT``: the record lacks it): what is the same is not read from the document.
        Returns whether the field now holds what ``written`` says from ``known``."""
        if (
            known is not NOT_READ
            and name not in self.string_cols
            and self._set_known(current, name, value, replace, known)
        ):
            return True
        self._set_read(current, name, value, replace)
        # (a text is made ``value``, a removed field is gone: whatever was stored before)
        return value is None or name in self.string_cols

    def _set_read(self, current: YMap, name: str, value: Any, replace: bool) -> None:
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
                if replace:
                    for sub in set(existing.keys()).difference(value):
                        del existing[sub]
                for sub, subvalue in value.items():
                    if subvalue is None:
                        if sub in existing:
                            del existing[sub]
                    else:
                        self._set_entry(name, existing, sub, subvalue, replace=replace)
            else:
                current[name] = Map(
                    {k: self._entry(name, v) for k, v in value.items() if v is not None}
                )
        elif isinstance(value, dict) and isinstance(existing, dict):
            merged = _merged(existing, value)
            if not same_json(merged, existing):
                current[name] = merged
        elif not same_json(existing, value):
            current[name] = value

    def _set_known(self, current: YMap, name: str, value: Any, replace: bool, known: Any) -> bool:
        """``set_field`` by the stored value ``known``, reading only the map a map column's
        entries are written into; whether it could (a map column stored otherwise cannot)."""
        if value is None:
            if known is not ABSENT:
                del current[name]
        elif name in self.map_cols:
            if not isinstance(known, dict):
                return False
            entries = current.get(name)
            if not isinstance(entries, Map):
                return False
            if replace:
                for sub in known.keys() - value.keys():
                    del entries[sub]
            text_field = self.text_fields.get(name)
            for sub, subvalue in value.items():
                if _same_entry(known, sub, subvalue):
                    continue
                if subvalue is None:
                    del entries[sub]
                elif isinstance(subvalue, dict) and isinstance(subvalue.get(text_field), str):
                    known_entry = known.get(sub, ABSENT)
                    self._set_entry(
                        name, entries, sub, subvalue, replace=replace, known=known_entry
                    )
                else:
                    entries[sub] = subvalue  # (a different value: what ``_entry`` stores)
        elif isinstance(value, dict) and isinstance(known, dict):
            merged = _merged(known, value)
            if not same_json(merged, known):
                current[name] = merged
        elif known is ABSENT or not same_json(known, value):
            current[name] = value
        return True

    def written(
        self, known: Mapping[str, Any], fields: list[tuple[str, Any]], replace: Collection[str]
    ) -> dict[str, Any]:
        """The record read as ``known`` once ``fields`` were written into it by ``set_field``
        (``replace``: the map columns written to replace), as the table would read it back."""
        record = dict(known)
        for name, value in fields:
            stored = record.get(name)
            if value is None:
                record.pop(name, None)
            elif name in self.map_cols and isinstance(stored, dict):
                entries = (
                    {k: v for k, v in stored.items() if k in value}
                    if name in replace
                    else dict(stored)
                )
                record[name] = _merged(entries, read_back(value))
            elif isinstance(value, dict) and isinstance(stored, dict) and name not in self.map_cols:
                record[name] = read_back(_merged(stored, value))
            else:
                record[name] = read_back(value)
        return record


def _merged(existing: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """An object field written into one: its entries set, ``None`` ones removed."""
    merged = dict(existing)
    for sub, subvalue in value.items():
        if subvalue is None:
            merged.pop(sub, None)
        else:
            merged[sub] = subvalue
    return merged


def _grows(known: Any, value: dict[str, Any], text_field: str | None) -> bool:
    """Whether the entry ``value`` is the entry ``known`` with its text field as it is or
    with more text at its end (a stream that grew), and its other fields the same."""
    if not isinstance(known, dict) or text_field is None or known.keys() != value.keys():
        return False
    old, new = known.get(text_field), value.get(text_field)
    if not isinstance(old, str) or not isinstance(new, str) or not new.startswith(old):
        return False
    return all(same_json(known[k], v) for k, v in value.items() if k != text_field)


def _same_entry(known: dict[str, Any], key: str, value: Any) -> bool:
    """Whether setting the entry ``key`` of the object ``known`` to ``value`` (``None``:
    removing it) leaves it as it is."""
    if value is None:
        return key not in known
    return key in known and same_json(known[key], value)
