"""``NotebookWidgets``: one notebook's widget table, its room and its bridge to the kernel.

The room ``ipywidgets:<file_id>`` (under ``/api/cocalc-sync/room/``) serves the table like
the notebook's ``syncdb`` room serves the notebook, with the same rights (read to join, write
to change; a change that reaches the kernel also needs kernels:execute), but nothing is logged:
updates go to the peers at once.
"""

from __future__ import annotations

from typing import Any

from ..origin import Origin
from ..sync.guard import table_guard
from ..sync.table import Record
from ..transport.room import Room
from .bridge import BufferStore, WidgetBridge
from .state import WIDGET_STATE_MIME, saved_state
from .table import WidgetTable, widget_syncdb

ROOM_PREFIX = "ipywidgets:"


class NotebookWidgets:
    """The widgets of one open notebook (module docstring)."""

    def __init__(self, file_id: str, blobs: BufferStore) -> None:
        self.file_id = file_id
        self.db = widget_syncdb()
        self.table = WidgetTable(self.db)
        self.blobs = blobs
        self.bridge = WidgetBridge(self.db, blobs, file_id)
        self._room: Room | None = None
        self._unsubscribe = self.db.on_update(self._publish)

    @property
    def room(self) -> Room:
        if self._room is None:
            self._room = Room(
                f"{ROOM_PREFIX}{self.file_id}",
                self.db.doc,
                apply_update=self.db.apply_update,
                check_update=table_guard(self.db).check,  # a bad update changes nothing
            )
        return self._room

    def _publish(self, update: bytes, origin: Origin) -> None:
        if self._room is not None:
            self._room.publish(update, origin)

    async def notebook_metadata(self, records: list[Record]) -> dict[str, Any]:
        """``MetadataSource``: the widget state to save with the notebook (nothing when no
        output shows a widget the table has: a notebook's imported state is then kept)."""
        state = await saved_state(self.table, self.blobs, records)
        return {} if state is None else {"widgets": {WIDGET_STATE_MIME: state}}

    def close(self) -> None:
        self.bridge.close()
        self._unsubscribe()
        if self._room is not None:
            self._room.close()
        self.db.close()
