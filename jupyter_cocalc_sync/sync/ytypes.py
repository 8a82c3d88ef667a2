"""The pycrdt shapes this package handles, as a type checker sees them.

A Yjs map or array holds plain JSON values and nested shared types side by side, and which one
a client wrote is known only when it is read (JupyterLab writes an output as a ``Map``,
``jupyter-nbmodel-client`` as a plain object): the element type is ``object``, told apart with
``isinstance``. pycrdt's ``MapEvent``/``ArrayEvent``/``TextEvent`` declare their attributes only
in ``__slots__``, so a type checker cannot see them: ``DeepEvent`` names what a deep observer
reads, and ``deep_events`` is the one place that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias, cast

from pycrdt import Array, Map, Text

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
