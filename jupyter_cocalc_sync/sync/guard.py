"""``UpdateGuard``: a peer's update is tried on a shadow copy of the table before the table
gets it, so an update that would write a malformed record changes nothing.

A Yjs update cannot be taken back once applied, and cannot be read without applying it. The
guard keeps a shadow document that mirrors the table's (every update of the table is applied to
it too, which costs the size of the update, not of the document), applies the peer's update to
the shadow first, and checks every record it touched the way ``SyncDB.check`` checks a record
given through the API, plus the shape the table relies on: a record is a map under its
JSON-encoded key, its string columns are texts and its map columns maps. Only an update that
passes reaches the table. A refused update has changed the shadow, which is then rebuilt from
the table (the cost of a whole copy, paid only for bad updates, whose peer is disconnected).
"""

from __future__ import annotations

import json
from typing import Any

from pycrdt import Doc, Map, Text

from ..errors import InvalidRecordError
from .table import SyncDB
from .values import from_crdt


class UpdateGuard:
    """Checks peer updates for ``db`` (module docstring)."""

    def __init__(self, db: SyncDB) -> None:
        self.db = db
        self._touched: set[str] | None = None
        self._build_shadow()
        self._subscription = db.doc.observe(self._mirror)

    def _build_shadow(self) -> None:
        self.shadow = Doc()
        self.shadow.apply_update(self.db.doc.get_update())
        self._records = self.shadow.get("records", type=Map)
        self._records.observe_deep(self._note_touched)

    def _mirror(self, event: Any) -> None:
        self.shadow.apply_update(event.update)

    def _note_touched(self, events: Any) -> None:
        if self._touched is None:
            return  # a mirrored update of the table: already checked, or the server's own
        for event in events:
            if event.path:
                self._touched.add(str(event.path[0]))
            else:
                self._touched.update(event.keys)

    def check(self, update: bytes) -> None:
        """Raise ``InvalidRecordError`` (and change nothing) unless ``update`` leaves every
        record it touches well-formed."""
        self._touched = set()
        try:
            try:
                self.shadow.apply_update(update)
            finally:
                touched, self._touched = self._touched, None
            for encoded in touched:
                self._check_record(encoded)
        except BaseException:
            self._build_shadow()  # the shadow holds the refused update: start again
            raise

    def _check_record(self, encoded: str) -> None:
        value = self._records.get(encoded)
        if value is None:
            return  # deleted
        try:
            key = tuple(json.loads(encoded))
        except (ValueError, TypeError):
            raise InvalidRecordError(f"record key {encoded[:40]!r} is not a JSON list") from None
        if not isinstance(value, Map):
            raise InvalidRecordError(f"record {encoded[:40]} is not a map")
        db = self.db
        for name in db.string_cols:
            if value.get(name) is not None and not isinstance(value.get(name), Text):
                raise InvalidRecordError(f"record {encoded[:40]}: {name!r} must be a text")
        for name in db.map_cols:
            if value.get(name) is not None and not isinstance(value.get(name), Map):
                raise InvalidRecordError(f"record {encoded[:40]}: {name!r} must be a map")
        record = from_crdt(value.to_py())
        if tuple(record.get(pk) for pk in db.primary_keys) != key:
            raise InvalidRecordError(f"record {encoded[:40]}: its fields do not match its key")
        db.check(record)

    def close(self) -> None:
        self.db.doc.unobserve(self._subscription)
