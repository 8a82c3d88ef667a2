"""The notebook's record table: which fields exist and what they may hold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidRecordError
from ..sync.table import SyncDB

PRIMARY_KEYS = ("type", "id")
STRING_COLS = ("input",)
MAP_COLS = ("output",)
#: a stream output's text is a Text: a growing stream is appended to, not rewritten
TEXT_FIELDS = {"output": "text"}
SETTINGS_KEY = ("settings", "main")

CELL_TYPES = ("code", "markdown", "raw")
CELL_STATES = ("start", "run", "busy", "idle")
BACKEND_STATES = ("init", "ready", "spawning", "starting", "running", "failed", "off")
KERNEL_STATES = ("idle", "busy")

_NUMBER = (int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


# field -> (check, description) for the fields of the record model
_CELL_FIELDS: dict[str, tuple[Any, str]] = {
    "input": (lambda v: isinstance(v, str), "a string"),
    "cell_type": (lambda v: v in CELL_TYPES, f"one of {CELL_TYPES}"),
    "pos": (_is_number, "a number"),
    "exec_count": (_is_int, "an integer"),
    "start": (_is_number, "a timestamp in ms"),
    "end": (_is_number, "a timestamp in ms"),
    "state": (lambda v: v in CELL_STATES, f"one of {CELL_STATES}"),
    "collapsed": (lambda v: isinstance(v, bool), "a boolean"),
    "scrolled": (lambda v: isinstance(v, bool) or v == "auto", "a boolean or 'auto'"),
    "tags": (
        lambda v: isinstance(v, dict) and all(x in (True, None) for x in v.values()),
        "an object {tag: true}",
    ),
    "metadata": (lambda v: isinstance(v, dict), "an object"),
    "attachments": (lambda v: isinstance(v, dict), "an object"),
    "output": (
        lambda v: (
            isinstance(v, dict)
            and all(k.isdigit() and (m is None or isinstance(m, dict)) for k, m in v.items())
        ),
        'an object {"0": message, "1": message, …}',
    ),
}

_SETTINGS_FIELDS: dict[str, tuple[Any, str]] = {
    "kernel": (lambda v: isinstance(v, str), "a kernelspec name"),
    "metadata": (lambda v: isinstance(v, dict), "an object"),
    "backend_state": (lambda v: v in BACKEND_STATES, f"one of {BACKEND_STATES}"),
    "kernel_state": (lambda v: v in KERNEL_STATES, f"one of {KERNEL_STATES}"),
    "kernel_error": (lambda v: isinstance(v, str), "a string"),
    "load_warning": (lambda v: isinstance(v, str), "a string"),
    "trust": (lambda v: isinstance(v, bool), "a boolean"),
    "max_output_length": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "max_output_messages": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "nbformat": (_is_int, "an integer"),
    "nbformat_minor": (_is_int, "an integer"),
}

_ANY_RECORD_FIELDS = {"output": _CELL_FIELDS["output"]}
_FIELDS_BY_TYPE = {"cell": _CELL_FIELDS, "settings": {**_SETTINGS_FIELDS, **_ANY_RECORD_FIELDS}}


def validate_record(record: Mapping[str, Any]) -> None:
    """Check the known fields of a partial notebook record; unknown fields pass through."""
    kind = record.get("type")
    if not isinstance(kind, str):
        raise InvalidRecordError(f"record type must be a string, got {kind!r}")
    record_id = record.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise InvalidRecordError(f"record id must be a non-empty string, got {record_id!r}")
    # the output column is the table's for every record type (saving reads it everywhere)
    fields = _FIELDS_BY_TYPE.get(kind, _ANY_RECORD_FIELDS)
    for name, value in record.items():
        if value is None or name not in fields:
            continue
        check, description = fields[name]
        if not check(value):
            raise InvalidRecordError(
                f"{kind} {record_id!r}: field {name!r} must be {description}, got {value!r:.80}"
            )


def notebook_syncdb(**kwargs: Any) -> SyncDB:
    """A ``SyncDB`` with the notebook's keys, columns and validation."""
    return SyncDB(
        PRIMARY_KEYS,
        STRING_COLS,
        map_cols=MAP_COLS,
        text_fields=TEXT_FIELDS,
        validate=validate_record,
        **kwargs,
    )
