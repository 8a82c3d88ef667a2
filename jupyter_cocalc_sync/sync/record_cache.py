"""``RecordCache``: a ``SyncDB``'s records as last decoded, each what is stored.

A record is decoded from the document once, when read, and kept until a change of it drops
it: when the change's transaction ends (the table's deep observer), or at once for a
``delete``. Typing into a text of a cached record keeps it: that text alone is read again when
the record is. What ``SyncDB.set`` writes into a cached record is written into the cached read
as well (``wrote``), which is kept when the transaction ends if the change was that alone: a
runner that writes a cell's start, outputs and end, and the kernel's state, reads none of it
back. Code given a record's map (``handed_out``) may change it unseen until the transaction
ends: a write of that record compares with the document, and its cached read is not kept.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from pycrdt import Doc, Text

from .events import REMOVED, DeepChanges
from .values import checked_from_crdt
from .ytypes import wrapped_text

#: one record: its fields as plain JSON values
Record: TypeAlias = dict[str, Any]


class RecordCache:
    """Decoded records of one table by stored key (module docstring)."""

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self._records: dict[str, Record] = {}
        #: cached records whose texts alone changed since: ``encoded -> {field: Text}``, read
        #: again (those fields only) when the record is (``get``)
        self._typed: dict[str, dict[str, Text]] = {}
        #: cached records that ``set`` wrote into in the transaction in progress, and the
        #: fields it wrote
        self._written: dict[str, set[str]] = {}
        #: records whose map was handed out in the transaction in progress
        self._handed_out: set[str] = set()

    def __contains__(self, encoded: str) -> bool:
        return encoded in self._records

    def get(self, encoded: str) -> Record | None:
        cached = self._records.get(encoded)
        texts = self._typed.pop(encoded, None)
        if cached is not None and texts:
            # a new dict: whoever holds the old one keeps what it read
            cached = self._records[encoded] = {
                **cached,
                **{name: str(text) for name, text in texts.items()},
            }
        return cached

    def put(self, encoded: str, record: Record) -> None:
        self._records[encoded] = record

    def known(self, encoded: str) -> Record | None:
        """The cached read a write of the record may compare with (``None``: read the
        document)."""
        return None if encoded in self._handed_out else self.get(encoded)

    def forget(self, encoded: str) -> None:
        """The record is changing: its cached read is no more (until ``wrote``)."""
        self._records.pop(encoded, None)
        self._typed.pop(encoded, None)

    def drop(self, encoded: str) -> None:
        """The record changed, and what it reads as is not known."""
        self.forget(encoded)
        self._written.pop(encoded, None)

    def wrote(self, encoded: str, record: Record, fields: list[str]) -> None:
        """``set`` wrote ``fields`` into the record, which now reads as ``record``."""
        self._records[encoded] = record
        self._written.setdefault(encoded, set()).update(fields)

    def handed_out(self, encoded: str) -> None:
        self._handed_out.add(encoded)
        self._written.pop(encoded, None)  # (what ``set`` wrote is no longer all of the change)

    def transaction_ended(self) -> None:
        """The table's transaction ended: what ``set`` wrote was kept or dropped (``apply``)."""
        self._written.clear()
        self._handed_out.clear()

    def apply(self, batch: DeepChanges) -> None:
        """A transaction's changes (a peer's, or the table's own): the records it changed
        are dropped, but for what ``set`` alone changed and texts typed into."""
        # (``_written`` is empty while a peer's update is applied: none is in a transaction)
        kept = {e for e in batch.rewritten if self._set_alone(batch, e)}
        for encoded in batch.rewritten - kept:
            self._records.pop(encoded, None)
            self._typed.pop(encoded, None)
        for encoded, values in batch.plain.items():
            cached = self._records.get(encoded)
            if cached is not None and encoded not in batch.rewritten:
                self._patch(encoded, cached, values)
        for encoded, texts in batch.typed.items():
            if encoded in self._records and (encoded not in batch.rewritten or encoded in kept):
                typed = self._typed.setdefault(encoded, {})
                for name, text in texts.items():
                    typed[name] = wrapped_text(text, self.doc)

    def _patch(self, encoded: str, cached: Record, values: dict[str, object]) -> None:
        """Fields of a cached record set to plain values (or removed): its cached read gets
        them as it would read them from the document (a peer's run request changes a cell's
        state: the cell, outputs and all, is not decoded again for it)."""
        read = {
            name: value if value is REMOVED else checked_from_crdt(value)
            for name, value in values.items()
        }
        if all(_same(cached.get(name, REMOVED), value) for name, value in read.items()):
            return  # (what ``set`` wrote into it: the cached read has it already)
        # a new dict: whoever holds the old one keeps what it read
        patched = {**cached}
        for name, value in read.items():
            if value is REMOVED:
                patched.pop(name, None)
            else:
                patched[name] = value
        self._records[encoded] = patched

    def _set_alone(self, batch: DeepChanges, encoded: str) -> bool:
        """Whether the record's cached read is what ``set`` wrote into it: it changed nothing
        but the fields ``set`` wrote, and texts typed into (read again: ``_typed``)."""
        written = self._written.get(encoded)
        change = batch.changes.get(encoded)
        if written is None or change is None or change.action != "update":
            return False
        typed = batch.typed.get(encoded, {})
        others = change.fields - written
        return all(name in typed and name not in change.replaced for name in others)


def _same(a: object, b: object) -> bool:
    """Whether two plain values are the same JSON value (``True`` is not ``1``)."""
    return a is b or (type(a) is type(b) and a == b)
