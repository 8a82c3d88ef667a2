"""jupyter-collaboration's session events for the rooms of files, which extensions listen to.

jupyterlab-chat's ``ChatManager`` learns that a chat was opened from the ``initialize`` event of
its room, and that it was closed from ``clean``; it then takes the chat's document with
``get_document`` and hands it to other extensions (jupyter-ai's router and personas answer in it).
The events are emitted as jupyter-collaboration emits them, under its schema id; the schema
is declared here, with the fields jupyterlab-chat reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_events import EventLogger

    from ..documents.text import FileDocument, FileRooms

SESSION_EVENTS = "https://schema.jupyter.org/jupyter_collaboration/session/v1"

SESSION_SCHEMA: dict[str, Any] = {
    "$id": SESSION_EVENTS,
    "version": "1",
    "title": "Collaborative session events",
    "personal-data": True,
    "description": "What happened to a collaboration room (emitted by this server for the "
    "rooms of files that are not notebooks).",
    "type": "object",
    "required": ["level", "room", "path"],
    "properties": {
        "level": {"enum": ["INFO", "DEBUG", "WARNING", "ERROR", "CRITICAL"]},
        "room": {"type": "string", "description": "the room id: format:type:file id"},
        "path": {"type": "string", "description": "the file's path"},
        "store": {"type": "string"},
        "action": {
            "enum": ["initialize", "load", "save", "overwrite", "clean"],
            "description": "initialize: the room opened; clean: it closed",
        },
        "msg": {"type": "string"},
    },
}


def emit_room_events(event_logger: EventLogger, file_rooms: FileRooms) -> None:
    """Emit ``initialize`` and ``clean`` as the rooms of files open and close."""
    if SESSION_EVENTS not in event_logger.schemas.schema_ids:
        event_logger.register_event_schema(SESSION_SCHEMA)

    def emit(action: str, document: FileDocument) -> None:
        data = {"level": "INFO", "room": document.room.name, "path": document.path}
        event_logger.emit(schema_id=SESSION_EVENTS, data={**data, "action": action})

    file_rooms.lifecycle.append(emit)
