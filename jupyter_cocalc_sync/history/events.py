"""jupyter-collaboration's fork event: ``ForkManager`` in ``jupyter-docprovider`` listens to it
on the server's event stream to learn that a fork was created or deleted."""

from __future__ import annotations

from typing import Any, Protocol

FORK_EVENTS = "https://schema.jupyter.org/jupyter_collaboration/fork/v1"

#: the schema as jupyter-collaboration declares it
FORK_EVENT_SCHEMA: dict[str, Any] = {
    "$id": FORK_EVENTS,
    "version": "1",
    "title": "Collaborative fork events",
    "personal-data": True,
    "description": "Fork events emitted from server-side during a collaborative session.",
    "type": "object",
    "required": ["fork_roomid", "fork_info", "username", "action"],
    "properties": {
        "fork_roomid": {"type": "string"},
        "fork_info": {
            "type": "object",
            "required": ["root_roomid", "synchronize", "title", "description"],
            "properties": {
                "root_roomid": {"type": "string"},
                "synchronize": {"type": "boolean"},
                "title": {"type": "string"},
                "description": {"type": "string"},
            },
        },
        "username": {"type": "string"},
        "action": {"enum": ["create", "delete"]},
    },
}


class EventSink(Protocol):
    """What the server's ``EventLogger`` offers (jupyter_events)."""

    def register_event_schema(self, schema: Any) -> None: ...

    def emit(self, *, schema_id: str, data: dict[str, Any]) -> Any: ...


class ForkEvents:
    """Emits fork events on the server's event logger (registering the schema once)."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        schemas = getattr(sink, "schemas", None)
        if schemas is None or FORK_EVENTS not in schemas.schema_ids:
            sink.register_event_schema(FORK_EVENT_SCHEMA)

    def __call__(self, event: dict[str, Any]) -> None:
        self.sink.emit(schema_id=FORK_EVENTS, data=event)
