"""The widget table of one notebook: the kernel's widget models as SyncDB records.

Keys are ``[model_id, type]``; every record has one JSON field, ``data``:

* ``state``: the state the kernel opened the model with (``comm_open``), plus ``model_name``,
  ``model_module`` and ``model_module_version`` as the saved widget-state schema has them;
* ``value``: the changes since (the kernel's ``update`` messages, merged key by key, and what
  clients write: a client changes a model by writing a partial state into it);
* ``buffers``: ``{json(path): sha1}``, the binary parts of the state (kept in the blob store);
  merged, so a later update of one buffer keeps the others;
* ``message``: the latest ``custom`` message (``{"content": …, "buffers": [sha1…]}``).

The table lives in memory only: a slider drag is not notebook history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidRecordError
from ..origin import Origin
from ..sync.table import SyncDB, json_copy

PRIMARY_KEYS = ("model_id", "type")
RECORD_TYPES = ("state", "value", "buffers", "message")
#: the saved-state schema's names for the model's identity (in the ``state`` record's data)
IDENTITY = {
    "model_name": "_model_name",
    "model_module": "_model_module",
    "model_module_version": "_model_module_version",
}
BUFFER_MIME = "application/octet-stream"

Path = list[str | int]


def validate_widget_record(record: Mapping[str, Any]) -> None:
    """A record of the widget table: a model id, a known type, an object of data."""
    model_id, kind = record.get("model_id"), record.get("type")
    if not isinstance(model_id, str) or not model_id:
        raise InvalidRecordError(f"model_id must be a non-empty string, got {model_id!r}")
    if kind not in RECORD_TYPES:
        raise InvalidRecordError(f"type must be one of {RECORD_TYPES}, got {kind!r}")
    data = record.get("data")
    if data is not None and not isinstance(data, dict):
        raise InvalidRecordError(f"{model_id} {kind}: data must be an object, got {data!r:.80}")
    extra = set(record) - {"model_id", "type", "data"}
    if extra:
        raise InvalidRecordError(f"{model_id} {kind}: unknown fields {sorted(extra)}")


def widget_syncdb() -> SyncDB:
    """An empty widget table."""
    return SyncDB(PRIMARY_KEYS, validate=validate_widget_record)


def encode_path(path: Sequence[str | int]) -> str:
    return json.dumps(list(path), separators=(",", ":"))


def remove_buffers(state: dict[str, Any], paths: Sequence[Path]) -> dict[str, Any]:
    """``state`` without the values at ``paths`` (they travel as binary buffers)."""
    state = json_copy(state)
    for path in paths:
        _pop_path(state, path)
    return state


def put_path(state: Any, path: Path, value: Any) -> None:
    """Set ``value`` at ``path`` inside ``state`` (the containers must exist)."""
    target = state
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def _pop_path(state: Any, path: Path) -> None:
    target = state
    try:
        for step in path[:-1]:
            target = target[step]
        if isinstance(target, dict):
            target.pop(path[-1], None)
        elif isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target):
            target[path[-1]] = None
    except (KeyError, IndexError, TypeError):
        return


class WidgetTable:
    """Reading and writing the records of the widget table (module docstring)."""

    def __init__(self, db: SyncDB) -> None:
        self.db = db

    def model_ids(self) -> list[str]:
        return sorted({str(key[0]) for key in self.db.field_values("data")})

    def data(self, model_id: str, kind: str) -> dict[str, Any]:
        record = self.db.peek((model_id, kind))
        return dict((record or {}).get("data") or {})

    def has(self, model_id: str) -> bool:
        return self.db.peek((model_id, "state")) is not None

    def state(self, model_id: str) -> dict[str, Any]:
        """The model's current state: what it was opened with, and every change since."""
        state = self.data(model_id, "state")
        for key in IDENTITY:
            state.pop(key, None)
        state.update(self.data(model_id, "value"))
        return state

    def identity(self, model_id: str) -> dict[str, Any]:
        data = self.data(model_id, "state")
        return {key: data.get(key) for key in IDENTITY}

    # -- writing (callers commit) -----------------------------------------------------------

    def open(
        self, model_id: str, state: dict[str, Any], buffers: Mapping[str, str], origin: Origin
    ) -> None:
        """A model the kernel opened: its state, its buffers; what it had before is gone."""
        data = dict(state)
        for key, trait in IDENTITY.items():
            data[key] = state.get(trait)
        self.close(model_id, origin)
        self.db.set({"model_id": model_id, "type": "state", "data": data}, origin)
        if buffers:
            self.db.set({"model_id": model_id, "type": "buffers", "data": dict(buffers)}, origin)

    def update(
        self,
        model_id: str,
        changes: dict[str, Any],
        buffers: Mapping[str, str],
        origin: Origin,
    ) -> None:
        """Merge ``changes`` into the model's value; buffers first, so no client sees a state
        whose buffer it cannot find yet (one commit has both anyway)."""
        if buffers:
            self.db.set({"model_id": model_id, "type": "buffers", "data": dict(buffers)}, origin)
        if changes:
            # ``None`` is a value of a trait here, not "delete the key": set it explicitly
            current = self.data(model_id, "value")
            current.update(changes)
            self.db.set({"model_id": model_id, "type": "value", "data": None}, origin)
            self.db.set({"model_id": model_id, "type": "value", "data": current}, origin)

    def message(self, model_id: str, content: Any, buffers: Sequence[str], origin: Origin) -> None:
        """The latest custom message replaces the one before."""
        data = {"content": content, "buffers": list(buffers)}
        self.db.set({"model_id": model_id, "type": "message", "data": None}, origin)
        self.db.set({"model_id": model_id, "type": "message", "data": data}, origin)

    def close(self, model_id: str, origin: Origin) -> None:
        for kind in RECORD_TYPES:
            self.db.delete({"model_id": model_id, "type": kind}, origin)

    def clear(self, origin: Origin) -> None:
        for model_id in self.model_ids():
            self.close(model_id, origin)
