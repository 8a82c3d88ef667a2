"""The ids a server gave cells a client had just inserted, as that client sees it happen.

Ours gives a cell inserted with an id another cell has a new id at once (tests/README.md, "A
cell inserted with an id another cell has"): the client sees the ``id`` of the cell it
inserted change from X to Y. The comparison then takes ours's Y for X, for those cells only.
No operation changes a cell's ``id`` in place (a type change deletes the cell and inserts one
with the same id), so every such change is the server's.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from pycrdt import ArrayEvent, MapEvent

from .clients import LabClient


class AssignedIds:
    """Watches one client's cells while it applies operations (``with``): ``assigned`` maps
    each id the server gave a cell to the id the cell was inserted with; ``misplaced`` says
    when the server changed the id of a cell the operation had not inserted (one that was
    there before it: its id, kept by the file and by anyone's reference, must stay)."""

    def __init__(self, client: LabClient) -> None:
        self.client = client
        self.assigned: dict[str, str] = {}
        self.misplaced: list[str] = []
        #: one entry per cell: whether the current operation inserted it
        self._inserted: list[bool] = []
        self._subscription: Any = None

    def __enter__(self) -> AssignedIds:
        self.operation_starts()
        self._subscription = self.client.cells.observe_deep(self._on_events)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.client.cells.unobserve(self._subscription)

    def operation_starts(self) -> None:
        self._inserted = [False] * len(self.client.cells)

    def _on_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, ArrayEvent) and not event.path:
                self._follow(event.delta)
            elif isinstance(event, MapEvent) and len(event.path) == 1 and "id" in event.keys:
                self._id_changed(event.path[0], event.keys["id"])

    def _follow(self, delta: list[dict[str, Any]]) -> None:
        """Keep ``_inserted`` in step with the cells array."""
        index = 0
        for change in delta:
            if "retain" in change:
                index += change["retain"]
            elif "delete" in change:
                del self._inserted[index : index + change["delete"]]
            elif "insert" in change:
                count = len(change["insert"])
                self._inserted[index:index] = [True] * count
                index += count

    def _id_changed(self, index: int, change: dict[str, Any]) -> None:
        old, new = change.get("oldValue"), change.get("newValue")
        if change.get("action") != "update" or not isinstance(new, str):
            self.misplaced.append(f"cell {index}: its id changed in place: {change}")
            return
        if not self._inserted[index]:
            self.misplaced.append(
                f"cells[{index}]: the server changed the id {old!r} to {new!r} of a cell "
                "the operation had not inserted"
            )
        # a copy of a copy: the id the first copy was inserted with (stock's, for both)
        self.assigned[new] = self.assigned.get(str(old), str(old))
