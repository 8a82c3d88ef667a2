"""The pycrdt shapes this package handles, as a type checker sees them.

A Yjs map or array holds plain JSON values and nested shared types side by side, and which one
a client wrote is known only when it is read (JupyterLab writes an output as a ``Map``,
``jupyter-nbmodel-client`` as a plain object): the element type is ``object``, told apart with
``isinstance``. pycrdt's ``MapEvent``/``ArrayEvent``/``TextEvent`` declare their attributes only
in ``__slots__``, so a type checker cannot see them: ``DeepEvent`` names what a deep observer
reads, and ``deep_events`` is the one place that says so.

``RawEvent`` is the event pycrdt's extension hands a deep observer of a type's ``integrated``
form, before pycrdt wraps it: its attributes are read from the transaction when asked for,
where the wrapper converts every one of them (the changed type, the old and new value of every
key, the transaction) into Python first — most of the cost of observing a small change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeAlias, cast

from pycrdt import Array, Doc, Map, Subscription, Text

# (the extension's own event classes: what an observer of ``integrated`` types is called with)
from pycrdt._pycrdt import ArrayEvent as _RawArrayEvent
from pycrdt._pycrdt import Map as _RawMap
from pycrdt._pycrdt import MapEvent as _RawMapEvent
from pycrdt._pycrdt import Text as _RawText
from pycrdt._pycrdt import TextEvent as _RawTextEvent

from ..origin import SERVER, Origin

#: a Yjs map: values are plain JSON or nested shared types
YMap: TypeAlias = Map[object]
#: a Yjs array: items are plain JSON or nested shared types
YArray: TypeAlias = Array[object]


class EventTransaction(Protocol):
    """The transaction an event was made in."""

    #: what the transaction was made with (``Doc.transaction(origin=…)``), None if nothing
    @property
    def origin(self) -> object: ...


class DeepEvent(Protocol):
    """One event of a deep observer's batch."""

    #: the transaction that made the change
    transaction: EventTransaction

    #: the shared type that changed
    target: YMap | YArray | Text
    #: keys and indices from the observed root down to ``target``
    path: list[str | int]
    #: ``MapEvent`` only: key -> ``{"action": "add"|"update"|"delete", ...}``
    keys: dict[str, dict[str, Any]]
    #: ``ArrayEvent``/``TextEvent`` only: the Yjs delta (``retain``/``delete``/``insert``)
    delta: list[dict[str, Any]]


class RawTransaction(Protocol):
    """The transaction a raw event was made in, valid while the observer runs."""


class _RawMapKeys(Protocol):
    def keys(self, txn: RawTransaction) -> list[str]: ...


class RawEvent(Protocol):
    """One event of a raw deep observer's batch: valid only while the observer runs."""

    #: the transaction that made the change (to read a raw value with)
    transaction: RawTransaction
    #: keys and indices from the observed root down to the changed type
    path: list[str | int]
    #: the changed type, raw (``wrapped_text`` makes a raw ``Text`` a pycrdt one)
    target: object
    #: map events only: key -> ``{"action": "add"|"update"|"delete", "newValue": …, …}``
    keys: dict[str, dict[str, Any]]
    #: text and array events only: the Yjs delta (``retain``/``delete``/``insert``)
    delta: list[dict[str, Any]]


def observe_deep_raw(
    shared: YMap | YArray | Text, callback: Callable[[Sequence[RawEvent]], None]
) -> Subscription:
    """Call ``callback`` with the raw events of every change of ``shared`` and what it holds
    (drop the subscription to stop). What ``callback`` raises is raised when the transaction
    ends, as pycrdt does for the observers it wraps."""
    doc = shared.doc

    def observe(events: Sequence[object]) -> None:
        try:
            callback(raw_deep_events(events))
        except Exception as e:  # (raised by the transaction's end: pycrdt's own way)
            doc._exceptions.append(e)

    subscription: Subscription = shared.integrated.observe_deep(observe)
    return subscription


def raw_deep_events(events: Sequence[object]) -> Sequence[RawEvent]:
    """The events the extension hands a raw deep observer, with their attributes visible."""
    return cast(Sequence[RawEvent], events)


def raw_map_keys(value: object, txn: RawTransaction) -> list[str] | None:
    """The keys of ``value`` if it is a ``Map`` as a raw event holds it (None: it is not)."""
    if not isinstance(value, _RawMap):
        return None
    return cast(_RawMapKeys, value).keys(txn)


def wrapped_text(raw: object, doc: Doc[Any]) -> Text:
    """A raw event's ``Text`` as pycrdt's (as pycrdt's own event wrapper makes it)."""
    return Text(_integrated=cast(_RawText, raw), _doc=doc)


def is_map_event(event: RawEvent) -> bool:
    return isinstance(event, _RawMapEvent)


def is_text_event(event: RawEvent) -> bool:
    return isinstance(event, _RawTextEvent)


def is_array_event(event: RawEvent) -> bool:
    return isinstance(event, _RawArrayEvent)


def deep_events(events: Sequence[object]) -> Sequence[DeepEvent]:
    """The events pycrdt hands a deep observer, with their attributes visible."""
    return cast(Sequence[DeepEvent], events)


def origin_of(events: Sequence[DeepEvent]) -> Origin:
    """Who made the changes of a deep observer's batch: the ``Origin`` their transaction was
    made with (``Doc.transaction(origin=…)``), the server's when it was made with none."""
    for event in events:
        origin = event.transaction.origin
        if isinstance(origin, Origin):
            return origin
        break
    return SERVER
