"""``UpdateGuard``: a peer's update is tried on a shadow copy of a document before the document
gets it, so an update that would write malformed content changes nothing.

A Yjs update cannot be taken back once applied, and cannot be read without applying it. The
guard keeps a shadow document that mirrors the real one (every update of the real one is applied
to it too, which costs the size of the update, not of the document), applies the peer's update
to the shadow first, and has an ``UpdateChecker`` check what it touched (``RecordChecker``: a
SyncDB table's records, checked as ``SyncDB.check`` checks a record given through the API).
Only an update that passes reaches the real document. A refused update has changed the shadow,
which is then rebuilt from the real one (the cost of a whole copy, paid only for bad updates,
whose peer is disconnected).

The shadow is made when a peer sends its first update with content, not before: a document its
clients only read (most of a notebook's life, and every open) costs one copy, not two, in
memory and in the CPU time of each change. A peer's update is the latency path (a keystroke, a
run request), so a check applies that update alone:

* the document's transaction that applies an update just checked is not mirrored (the shadow
  has it already): the bytes are compared, and only the same bytes are skipped;
* the document's other updates (the server's own: a run's outputs, each a transaction) are
  applied to the shadow merged, in a later turn of the event loop than the one that made them
  (or every ``MIRROR_BEHIND`` updates when no loop runs), off the path of the peer's next
  update; a check still catches up first with whatever the shadow has not applied yet;
* the shadow's roots are observed once, through pycrdt's raw events (pycrdt's own wrappers
  convert every field of every event, and re-read the callback's signature at each
  subscription); what an event touched is read only while a peer's update is applied.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol, TypeAlias

from pycrdt import Doc, Map, Subscription, Text, TransactionEvent, merge_updates

from ..errors import InvalidRecordError
from .table import SyncDB
from .values import from_crdt, map_from_crdt
from .ytypes import (
    RawEvent,
    YArray,
    YMap,
    is_array_event,
    is_map_event,
    is_text_event,
    observe_deep_raw,
)

#: a Yjs update that holds nothing (no structs, no deletions)
EMPTY_UPDATE = b"\x00\x00"
#: ``(key or index, field)`` of a root's entry: only the characters of the text in that field
#: of that entry changed (typing), which a checker may check more cheaply than the entry
TextField = tuple[str | int, str]
#: ``(key or index, field, FIELD_SET)`` of a root's entry (a map): that field of the entry
#: was set or removed, the entry itself and its other fields untouched (for checkers whose
#: ``checks_fields`` is true)
FieldSet = tuple[str | int, str, str]
FIELD_SET = "set"
#: root name -> the keys (maps) or indices (arrays) of it that an update touched, or the
#: ``TextField`` or ``FieldSet`` entries when that was all
Touched = dict[str, set[str | int | TextField | FieldSet]]
#: the kind of a root: a ``Map`` (keys) or an ``Array`` (indices)
RootKind: TypeAlias = type[YMap] | type[YArray]
#: the shadow applies the document's updates it missed once this many, or this many bytes of
#: them, are waiting (a document no peer writes to for long holds no more of them than that)
MIRROR_BEHIND = 64
MIRROR_BEHIND_BYTES = 1 << 20


class UpdateChecker(Protocol):
    """What makes a document's content well-formed."""

    #: the roots to watch, by name (``Map`` or ``Array``)
    roots: Mapping[str, RootKind]
    #: whether a field set in an entry (a map) is named as a ``FieldSet`` (else the entry)
    checks_fields: bool

    def check(self, shadow: Doc[Any], touched: Touched) -> None:
        """Raise ``InvalidRecordError`` unless what ``touched`` names in ``shadow`` is valid."""


class UpdateGuard:
    """Checks peer updates of ``doc`` with ``checker`` (module docstring)."""

    def __init__(self, doc: Doc[Any], checker: UpdateChecker) -> None:
        self.doc = doc
        self.checker = checker
        #: what the peer's update being applied to the shadow touched (None: no check runs)
        self._touched: Touched | None = None
        #: the mirror of ``doc`` (None until a peer's update needs it)
        self.shadow: Doc[Any] | None = None
        self._shadow_subscriptions: list[Subscription] = []
        self._subscription: Subscription | None = None
        #: the document's updates the shadow has not applied yet, and their bytes
        self._behind: list[bytes] = []
        self._behind_bytes = 0
        self._catch_up_scheduled = False
        #: the update the last check passed: the shadow has it (``_mirror``)
        self._checked: bytes | None = None

    def _mirrored(self) -> Doc[Any]:
        if self.shadow is None:
            self._build_shadow()
            self._subscription = self.doc.observe(self._mirror)
        assert self.shadow is not None
        return self.shadow

    def _build_shadow(self) -> None:
        self._behind, self._behind_bytes, self._checked = [], 0, None
        for subscription in self._shadow_subscriptions:
            subscription.drop()
        self.shadow = Doc()
        self.shadow.apply_update(self.doc.get_update())
        self._shadow_subscriptions = [
            observe_deep_raw(self.shadow.get(name, type=kind), self._observer(name))
            for name, kind in self.checker.roots.items()
        ]

    def _observer(self, name: str) -> Callable[[Sequence[RawEvent]], None]:
        def observe(events: Sequence[RawEvent]) -> None:
            touched = self._touched
            if touched is not None:  # (else catching up with the document: nothing to check)
                self._note_touched(touched.setdefault(name, set()), events)

        return observe

    def _mirror(self, event: TransactionEvent) -> None:
        if self.shadow is None:
            return
        update = event.update
        checked, self._checked = self._checked, None
        if update == checked:
            return  # the peer's update just checked: applied to the shadow already
        self._behind.append(update)
        self._behind_bytes += len(update)
        if len(self._behind) >= MIRROR_BEHIND or self._behind_bytes >= MIRROR_BEHIND_BYTES:
            self._catch_up()
        elif not self._catch_up_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # (no loop: the next check, or ``MIRROR_BEHIND``, catches up)
            self._catch_up_scheduled = True
            loop.call_soon(self._catch_up_later)

    def _catch_up_later(self) -> None:
        self._catch_up_scheduled = False
        self._catch_up()

    def _catch_up(self) -> None:
        """Apply the document's updates the shadow missed (as one)."""
        behind, self._behind, self._behind_bytes = self._behind, [], 0
        if self.shadow is not None and behind:
            self.shadow.apply_update(behind[0] if len(behind) == 1 else merge_updates(*behind))

    def _note_touched(
        self, touched: set[str | int | TextField | FieldSet], events: Sequence[RawEvent]
    ) -> None:
        checks_fields = self.checker.checks_fields
        for event in events:
            path = event.path
            if len(path) == 2 and isinstance(path[1], str) and is_text_event(event):
                touched.add((path[0], path[1]))
            elif len(path) == 1 and is_map_event(event) and checks_fields:
                touched.update((path[0], str(field), FIELD_SET) for field in event.keys)
            elif path:
                touched.add(path[0])
            elif is_array_event(event):
                touched.update(_inserted_indices(event.delta))
            else:
                touched.update(event.keys)

    def check(self, update: bytes) -> None:
        """Raise ``InvalidRecordError`` (and change nothing) unless ``update`` leaves what it
        touches well-formed."""
        if update == EMPTY_UPDATE:
            return  # (the first sync of a client with an empty document: nothing in it)
        shadow = self._mirrored()
        self._catch_up()
        touched: Touched = {}
        self._touched = touched
        try:
            try:
                shadow.apply_update(update)
            finally:
                self._touched = None
            if touched:
                self.checker.check(shadow, touched)
        except BaseException:  # (re-raised: whatever stopped the check, even a panic)
            self._build_shadow()  # the shadow holds the refused update: start again
            raise
        self._checked = update

    def close(self) -> None:
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None
        for subscription in self._shadow_subscriptions:
            subscription.drop()
        self._shadow_subscriptions = []


def split_touched(
    entries: Iterable[str | int | TextField | FieldSet],
) -> tuple[set[str | int], dict[str | int, set[str]]]:
    """``(entries changed otherwise, {entry: its text fields whose characters alone changed})``
    for one root of a ``Touched``: an entry in the first is not in the second (an entry with
    a ``FieldSet`` is in the first)."""
    whole, texts, fields = split_fields(entries)
    whole.update(fields)
    for entry in fields:
        texts.pop(entry, None)
    return whole, texts


def split_fields(
    entries: Iterable[str | int | TextField | FieldSet],
) -> tuple[set[str | int], dict[str | int, set[str]], dict[str | int, set[str]]]:
    """``split_touched``, with the ``FieldSet`` entries apart: ``(entries changed otherwise,
    {entry: text fields whose characters alone changed}, {entry: fields set})``; an entry
    in the first is in neither of the others."""
    whole: set[str | int] = set()
    texts: dict[str | int, set[str]] = {}
    fields: dict[str | int, set[str]] = {}
    for entry in entries:
        if isinstance(entry, tuple):
            (texts if len(entry) == 2 else fields).setdefault(entry[0], set()).add(entry[1])
        else:
            whole.add(entry)
    for entry in whole:
        texts.pop(entry, None)
        fields.pop(entry, None)
    return whole, texts, fields


def _inserted_indices(delta: list[dict[str, Any]]) -> set[int]:
    """The indices (in the array after the change) of the items a delta inserted."""
    indices: set[int] = set()
    position = 0
    for op in delta:
        if "retain" in op:
            position += op["retain"]
        elif "insert" in op:
            count = len(op["insert"])
            indices.update(range(position, position + count))
            position += count
    return indices


class RecordChecker:
    """A ``SyncDB`` table: every touched record passes ``SyncDB.check`` and has the shape the
    table relies on (a map under its JSON-encoded key, texts and maps in their columns)."""

    roots: Mapping[str, RootKind] = {"records": Map}
    checks_fields = True

    def __init__(self, db: SyncDB) -> None:
        self.db = db
        #: the shadow last checked and its records root (pycrdt makes a new one per ``get``)
        self._records: tuple[Doc[Any], YMap] | None = None

    def check(self, shadow: Doc[Any], touched: Touched) -> None:
        if self._records is None or self._records[0] is not shadow:
            self._records = (shadow, shadow.get("records", type=Map))
        records = self._records[1]
        whole, texts, fields = split_fields(touched.get("records", ()))
        for encoded in whole:
            self._check_record(str(encoded), records.get(str(encoded)))
        for encoded, names in texts.items():
            self._check_texts(str(encoded), records.get(str(encoded)), names)
        for encoded, names in fields.items():
            self._check_fields(str(encoded), records.get(str(encoded)), names)

    def _partial(self, encoded: str, value: object) -> dict[str, Any] | None:
        """The key fields of the record ``encoded`` (a map), to check some of its fields as a
        partial record; ``None`` when the record itself must be checked."""
        if not isinstance(value, Map):
            return None
        key = _key_parts(encoded)
        if key is None or len(key) != len(self.db.primary_keys):
            return None  # (the whole check says what is wrong with the key)
        return dict(zip(self.db.primary_keys, key, strict=True))

    def _check_texts(self, encoded: str, value: object, fields: set[str]) -> None:
        """Only the characters of ``fields``, texts of the record, changed: the fields alone
        are checked (as a partial record), not the whole record with its outputs."""
        record = self._partial(encoded, value)
        if record is None or not fields.issubset(self.db.string_cols):
            self._check_record(encoded, value)
            return
        assert isinstance(value, Map)
        record.update((name, str(value.get(name))) for name in fields)
        self.db.check(record)

    def _check_fields(self, encoded: str, value: object, fields: set[str]) -> None:
        """Only ``fields`` of the record were set or removed (a cell's state, its position):
        those fields alone are checked, as ``_check_record`` checks them, not the whole record
        with its outputs. A key field is checked with the whole record."""
        db = self.db
        record = self._partial(encoded, value)
        if record is None or not fields.isdisjoint(db.primary_keys):
            self._check_record(encoded, value)
            return
        assert isinstance(value, Map)
        for name in fields:
            field = value.get(name)
            if name in db.string_cols and field is not None and not isinstance(field, Text):
                raise InvalidRecordError(f"record {encoded[:40]}: {name!r} must be a text")
            if name in db.map_cols and field is not None and not isinstance(field, Map):
                raise InvalidRecordError(f"record {encoded[:40]}: {name!r} must be a map")
            record[name] = from_crdt(field)
        db.check(record)

    def _check_record(self, encoded: str, value: object) -> None:
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
        record = map_from_crdt(value)
        if tuple(record.get(pk) for pk in db.primary_keys) != key:
            raise InvalidRecordError(f"record {encoded[:40]}: its fields do not match its key")
        db.check(record)


@lru_cache(maxsize=4096)
def _key_parts(encoded: str) -> tuple[object, ...] | None:
    """The parts of a record's JSON-encoded key (None: not a JSON list); a cell's key is
    decoded once, not at each of its checks."""
    try:
        key = json.loads(encoded)
    except ValueError:
        return None
    return tuple(key) if isinstance(key, list) else None


def table_guard(db: SyncDB) -> UpdateGuard:
    """The guard of a ``SyncDB`` room."""
    return UpdateGuard(db.doc, RecordChecker(db))
