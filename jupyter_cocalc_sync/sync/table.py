"""``SyncDB``: a table of records over a pycrdt ``Doc``.

Wire layout (what any Yjs client sees): a root ``Map`` named ``"records"``; its keys are the JSON
arrays of the primary-key values (``["cell","a1b2"]``); each value is a ``Map`` of the record's
fields, primary-key fields included. String columns are ``Text`` (concurrent typing merges
character-wise), map columns (the notebook's ``output``) are ``Map`` s of plain JSON values, every
other field is a plain JSON value (last writer wins, per field). An entry of a map column that
has a string under the column's *text field* (``text`` of a stream output) is a ``Map`` whose
text field is a ``Text``: a stream that grows by a line costs that line in the document's
history and on the wire, not a new copy of the whole stream.

``set`` and ``delete`` apply at once (so ``get`` sees them); ``commit`` closes one change: the
updates made since the last commit are merged into one Yjs update and handed to the update
listeners (the change log and the rooms), so a commit is one history entry and one broadcast.
Updates that arrive from peers through ``apply_update`` are handed on as they come.

Every change is made with an ``Origin`` given as an argument (who made it); the change
listeners get the origin of the write, the update listeners that of the commit or the peer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from pycrdt import Doc, Map, Subscription, TransactionEvent, merge_updates

from ..errors import InvalidRecordError
from ..errors_seen import count_error
from ..origin import SERVER, Origin
from .events import ChangeEvent, Key, RecordChange, decode_key, deep_changes
from .layout import ABSENT, NOT_READ, RecordLayout
from .record_cache import Record, RecordCache
from .values import check_json, checked_from_crdt, checked_map_from_crdt, json_copy, same_json
from .ytypes import RawEvent, YMap, observe_deep_raw

log = logging.getLogger(__name__)

T = TypeVar("T")

#: a record key as the table stores it: JSON, compact, unicode kept
_KEY_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@lru_cache(maxsize=8192)
def _encoded_text_key(key: tuple[str, ...]) -> str:
    """The stored key of an all-text key, remembered: every read and write of a record
    encodes its key (a run reads and writes the settings record several times)."""
    return _KEY_JSON(list(key))


# (re-exported: the table's users import them from here)
__all__ = [
    "ChangeEvent",
    "Key",
    "Record",
    "RecordChange",
    "SyncDB",
    "YMap",
    "json_copy",
    "same_json",
]


ChangeListener = Callable[[ChangeEvent], None]
UpdateListener = Callable[[bytes, Origin], None]
Validator = Callable[[Mapping[str, Any]], None]


class SyncDB:
    """A table of records, synchronised through a pycrdt ``Doc``.

    ``primary_keys`` pick a record; ``string_cols`` are merged character-wise; ``map_cols``
    are maps of plain JSON values merged per key. ``validate`` (optional) checks a partial
    record before anything is written and raises ``InvalidRecordError``.
    """

    def __init__(
        self,
        primary_keys: Sequence[str],
        string_cols: Sequence[str] = (),
        *,
        map_cols: Sequence[str] = (),
        text_fields: Mapping[str, str] | None = None,
        validate: Validator | None = None,
        doc: Doc[Any] | None = None,
    ) -> None:
        if not primary_keys:
            raise ValueError("SyncDB needs at least one primary key")
        overlap = set(primary_keys) & (set(string_cols) | set(map_cols))
        if overlap:
            raise ValueError(f"primary keys cannot also be string or map columns: {overlap}")
        self.primary_keys: tuple[str, ...] = tuple(primary_keys)
        self.string_cols: frozenset[str] = frozenset(string_cols)
        self.map_cols: frozenset[str] = frozenset(map_cols)
        #: map column -> the field of its entries kept as a ``Text``
        self.text_fields: dict[str, str] = dict(text_fields or {})
        self.layout = RecordLayout(self.string_cols, self.map_cols, self.text_fields)
        self._validate = validate
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.records: YMap = self.doc.get("records", type=Map)
        self._cache = RecordCache(self.doc)
        #: the origin of the write in progress (changes made on the ``doc`` directly, not
        #: through this class, are the server's)
        self._origin: Origin = SERVER
        #: a peer's update is being applied: handed on at once, not committed later
        self._applying = False
        self._uncommitted: list[bytes] = []
        self._change_listeners: list[ChangeListener] = []
        self._update_listeners: list[UpdateListener] = []
        self._txn_depth = 0
        self._pending_events: list[ChangeEvent] = []
        self._deep_subscription: Subscription | None = self._observe_records()
        self._doc_subscription = self.doc.observe(self._on_transaction)

    def _observe_records(self) -> Subscription:
        # on the extension's type, not pycrdt's wrapper: the wrapper converts every attribute
        # of every event to Python before the observer runs (``deep_changes`` reads a few)
        return observe_deep_raw(self.records, self._on_deep_events)

    def _unobserve_records(self) -> None:
        if self._deep_subscription is not None:
            self._deep_subscription.drop()
            self._deep_subscription = None

    # -- keys -------------------------------------------------------------------------------

    def key_of(self, record: Mapping[str, Any]) -> Key:
        """The primary-key tuple of ``record`` (raises if a primary key is missing)."""
        if not isinstance(record, Mapping):
            raise InvalidRecordError(f"a record must be an object, not {type(record).__name__}")
        missing = [pk for pk in self.primary_keys if record.get(pk) is None]
        if missing:
            raise InvalidRecordError(f"record is missing primary key field(s) {missing}: {record}")
        return tuple(record[pk] for pk in self.primary_keys)

    @staticmethod
    def encode_key(key: Key) -> str:
        # (only all-text keys are remembered: ``1``, ``1.0`` and ``True`` are one cache key)
        if type(key) is tuple and all(type(part) is str for part in key):
            return _encoded_text_key(key)
        return _KEY_JSON(list(key))

    @staticmethod
    def decode_key(encoded: str) -> Key:
        return decode_key(encoded)

    # -- reading ----------------------------------------------------------------------------

    def _record(self, encoded: str, value: object = None) -> Record | None:
        """The record stored under ``encoded`` (``value``: its stored form, if read already),
        decoded once and cached: a cached record is what is stored (``RecordCache``), so the
        document is not read for it."""
        cached = self._cache.get(encoded)
        if cached is not None:
            return cached
        if value is None:
            value = self.records.get(encoded)
        if not isinstance(value, Map):
            return None
        record = checked_map_from_crdt(value)
        self._cache.put(encoded, record)
        return record

    def _iter(self) -> Iterator[tuple[Record, bool]]:
        """``(record, shared)``: full scans do not fill the cache (it would double the memory
        of a big notebook); ``shared`` records are the cache's own and must be copied."""
        for encoded, value in self.records.items():
            record = self._cache.get(encoded)
            if record is not None:
                yield record, True
            elif isinstance(value, Map):
                yield checked_map_from_crdt(value), False

    def field_values(self, name: str, where: Mapping[str, Any] | None = None) -> dict[Key, Any]:
        """``{key: record[name]}`` for records having the field, without reading the rest."""
        values: dict[Key, Any] = {}
        for encoded, value in self.records.items():
            if not isinstance(value, Map) or name not in value:
                continue
            if where and not all(
                same_json(checked_from_crdt(value.get(k)), v) for k, v in where.items()
            ):
                continue
            values[self.decode_key(encoded)] = checked_from_crdt(value[name])
        return values

    def get(self, where: Mapping[str, Any] | None = None) -> list[Record]:
        """Copies of the records whose fields equal every item of ``where``."""
        if where and all(pk in where for pk in self.primary_keys):
            one = self.get_one(where)
            return [one] if one is not None else []
        items = where.items() if where else ()
        return [
            json_copy(r) if shared else r
            for r, shared in self._iter()
            if all(same_json(r.get(k), v) for k, v in items)
        ]

    def get_one(self, where: Mapping[str, Any]) -> Record | None:
        """A copy of the first record matching ``where``, or ``None``."""
        if all(pk in where for pk in self.primary_keys):
            record = self._record(self.encode_key(self.key_of(where)))
            if record is None or not all(same_json(record.get(k), v) for k, v in where.items()):
                return None
            return json_copy(record)
        for record, shared in self._iter():
            if all(same_json(record.get(k), v) for k, v in where.items()):
                return json_copy(record) if shared else record
        return None

    def read(self, key: Key) -> Record | None:
        """A fresh copy of the record ``key``, without filling the record cache (for code that
        reads every record once, like building a view of the whole table)."""
        encoded = self.encode_key(key)
        cached = self._cache.get(encoded)
        if cached is not None:
            return json_copy(cached)
        value = self.records.get(encoded)
        return checked_map_from_crdt(value) if isinstance(value, Map) else None

    def peek(self, key: Key) -> Record | None:
        """The cached record for ``key`` without copying it: callers must not mutate it."""
        return self._record(self.encode_key(key))

    def has(self, key: Key) -> bool:
        """Whether the record ``key`` exists (a cached record says so without reading the
        document: ``_record``)."""
        encoded = self.encode_key(key)
        return encoded in self._cache or isinstance(self.records.get(encoded), Map)

    def record_map(self, key: Key) -> YMap | None:
        """The live pycrdt ``Map`` of a record (for code that edits nested types directly:
        the table sees those edits when their transaction ends; a ``set`` of the record in
        the same transaction reads what it changes from the document)."""
        encoded = self.encode_key(key)
        self._cache.handed_out(encoded)
        value = self.records.get(encoded)
        return value if isinstance(value, Map) else None

    def __len__(self) -> int:
        return len(self.records)

    # -- writing ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self, origin: Origin) -> Iterator[None]:
        """Group several ``set``/``delete`` calls of ``origin`` into one Yjs transaction."""
        if self._txn_depth:
            if origin != self._origin:
                raise ValueError(f"a change of {origin} inside a transaction of {self._origin}")
            yield
            return
        previous, self._origin = self._origin, origin
        self._txn_depth += 1
        try:
            with self.doc.transaction():
                yield
        finally:
            self._txn_depth -= 1
            self._origin = previous
            self._cache.transaction_ended()
        self._dispatch()

    def check(self, record: Mapping[str, Any]) -> Key:
        """Validate a partial record without writing it; returns its key."""
        if not isinstance(record, Mapping):
            raise InvalidRecordError(f"a record must be an object, not {type(record).__name__}")
        key = self.key_of(record)
        for pk, value in zip(self.primary_keys, key, strict=True):
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise InvalidRecordError(f"primary key {pk!r} must be a string or integer")
        for name, value in record.items():
            if not isinstance(name, str):
                raise InvalidRecordError(f"field name {name!r} is not a string")
            if value is None:
                continue
            if name in self.string_cols and not isinstance(value, str):
                raise InvalidRecordError(f"field {name!r} must be a string")
            if name in self.map_cols and not isinstance(value, dict):
                raise InvalidRecordError(f"field {name!r} must be an object")
            if type(value) is str or type(value) is bool:
                continue  # (plain JSON: most fields of most records)
            try:
                check_json(value, name)
            except ValueError as e:
                raise InvalidRecordError(str(e)) from None
        if self._validate is not None:
            self._validate(record)
        return key

    def set(
        self, record: Mapping[str, Any], origin: Origin, *, replace: Collection[str] = ()
    ) -> None:
        """Create or change one record as ``origin`` (the module docstring has the merge
        rules); the map columns named in ``replace`` get the record's entries as a whole, in
        place (those it lacks are removed, equal ones left as they are)."""
        key = self.check(record)
        encoded = self.encode_key(key)
        # the cached read of the record is what is stored: the fields it has as they are
        # written are no change, and the others are written without reading the document
        known = self._cache.known(encoded)
        fields = [
            (name, value)
            for name, value in record.items()
            if name not in self.primary_keys
            and (
                known is None
                or not self.layout.unchanged(
                    name, value, known.get(name, ABSENT), replace=name in replace
                )
            )
        ]
        if known is not None and not fields:
            return
        # (changed now: what it holds is read again, unless what was written is known)
        self._cache.forget(encoded)
        with self.transaction(origin):
            current = self.records.get(encoded)
            if not isinstance(current, Map):
                self._cache.drop(encoded)
                self.records[encoded] = Map(self.layout.prelim(record))
                return
            known_now = known is not None
            for name, value in fields:
                known_now &= self.layout.set_field(
                    current,
                    name,
                    value,
                    replace=name in replace,
                    known=NOT_READ if known is None else known.get(name, ABSENT),
                )
            if known is not None and known_now:
                written = self.layout.written(known, fields, replace)
                self._cache.wrote(encoded, written, [name for name, _ in fields])
            else:
                self._cache.drop(encoded)

    def delete(self, where: Mapping[str, Any], origin: Origin) -> int:
        """Remove every record matching ``where`` as ``origin``; returns how many were removed.

        ``where`` must be given: ``delete({})`` removes every record.
        """
        if not isinstance(where, Mapping):
            raise InvalidRecordError("delete needs an object naming the records to remove")
        if where and all(pk in where for pk in self.primary_keys):
            targets = [self.encode_key(self.key_of(where))] if self.get_one(where) else []
        else:
            targets = [
                encoded
                for encoded, value in self.records.items()
                if (record := self._record(encoded, value)) is not None
                and all(same_json(record.get(k), v) for k, v in where.items())
            ]
        if targets:
            with self.transaction(origin):
                for encoded in targets:
                    del self.records[encoded]
                    # (gone now: its cached read would say it exists until the change is over)
                    self._cache.drop(encoded)
        return len(targets)

    def commit(self, origin: Origin) -> bool:
        """End the current change, as ``origin``'s (the update listeners get it with the
        update); returns whether there was anything to commit."""
        if not self._uncommitted:
            return False
        updates, self._uncommitted = self._uncommitted, []
        update = updates[0] if len(updates) == 1 else merge_updates(*updates)
        self._emit_update(update, origin)
        return True

    @property
    def has_uncommitted_changes(self) -> bool:
        return bool(self._uncommitted)

    # -- peers ------------------------------------------------------------------------------

    def apply_update(self, update: bytes, origin: Origin) -> None:
        """Apply a Yjs update from a peer (the store, the file); listeners see it with
        ``origin``, and it is handed on at once (nothing to commit)."""
        if self._txn_depth:
            raise RuntimeError("a peer's update cannot be applied inside a transaction")
        previous, self._origin, self._applying = self._origin, origin, True
        try:
            self.doc.apply_update(update)
        finally:
            self._origin, self._applying = previous, False
        self._dispatch()

    def load(self, update: bytes, records: Sequence[Mapping[str, Any]], origin: Origin) -> None:
        """``apply_update`` of an ``update`` that creates exactly ``records`` in this empty
        table (an import): the update listeners get ``update`` itself and the change event is
        made from ``records``, not from Yjs's events of every record and field and the
        transaction encoded again (for a 20 MB notebook, tens of ms on the event loop)."""
        if self._txn_depth:
            raise RuntimeError("a peer's update cannot be applied inside a transaction")
        if len(self.records):
            raise RuntimeError("load() is for an empty table")
        observed = self._deep_subscription is not None
        if observed:
            self._unobserve_records()
            self.doc.unobserve(self._doc_subscription)
        try:
            self.doc.apply_update(update)
        finally:
            if observed:
                self._deep_subscription = self._observe_records()
                self._doc_subscription = self.doc.observe(self._on_transaction)
        self._emit_update(update, origin)
        changes: dict[Key, RecordChange] = {}
        for record in records:
            key = self.key_of(record)
            changes[key] = RecordChange(key, "add", {k for k, v in record.items() if v is not None})
        if changes:
            self._pending_events.append(ChangeEvent(origin, changes, False))
        self._dispatch()

    def get_state(self) -> bytes:
        return self.doc.get_state()

    def get_update(self, state: bytes | None = None) -> bytes:
        return self.doc.get_update(state)

    # -- observing --------------------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(ChangeEvent)`` after every transaction that changes records.

        Listeners run when the transaction is over, so they may change the table themselves.
        """
        self._change_listeners.append(listener)
        return lambda: _discard(self._change_listeners, listener)

    def on_update(self, listener: UpdateListener) -> Callable[[], None]:
        """Call ``listener(update, origin)`` for every commit and every applied peer update."""
        self._update_listeners.append(listener)
        return lambda: _discard(self._update_listeners, listener)

    def _on_transaction(self, event: TransactionEvent) -> None:
        update = event.update
        if self._applying:
            self._emit_update(update, self._origin)
        else:
            self._uncommitted.append(update)

    def _emit_update(self, update: bytes, origin: Origin) -> None:
        for listener in list(self._update_listeners):
            try:
                listener(update, origin)
            except Exception as e:  # (the other listeners, the log among them, still get it)
                count_error("syncdb.update_listener", e, "a SyncDB update listener", logger=log)

    def _on_deep_events(self, events: Sequence[RawEvent]) -> None:
        batch = deep_changes(events, self.map_cols)
        self._cache.apply(batch)
        if batch.changes:
            # listeners run once the transaction is over (they may write to the table)
            changes = {change.key: change for change in batch.changes.values()}
            self._pending_events.append(ChangeEvent(self._origin, changes, not self._applying))

    def _dispatch(self) -> None:
        while self._pending_events and not self._txn_depth:
            event = self._pending_events.pop(0)
            for listener in list(self._change_listeners):
                try:
                    listener(event)
                except Exception as e:  # (the other listeners still see the change)
                    count_error("syncdb.change_listener", e, "a SyncDB change listener", logger=log)

    def close(self) -> None:
        """Stop observing the document."""
        if self._deep_subscription is not None:
            self._unobserve_records()
            self.doc.unobserve(self._doc_subscription)
        self._change_listeners.clear()
        self._update_listeners.clear()


def _discard(listeners: list[T], listener: T) -> None:
    if listener in listeners:
        listeners.remove(listener)
