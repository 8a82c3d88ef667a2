"""``TableRunRequests``: which changes of a notebook's table ask its runner for something.

A client asks for a run by setting a cell's ``state`` to ``"start"``; several cells asked for
in one change run in notebook order. A client that may not execute gets its cells' states back
(or a later open would run them). A deleted cell leaves the queue (or is interrupted); a change
of the running cell's outputs may answer its ``input()``. Opening a notebook that a stopped
server left with cells queued or busy sets them idle (a busy one says its run was cut off) and
runs the ones still asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Protocol

from ..format.ipynb import cell_order_key
from ..format.schema import SETTINGS_KEY
from ..origin import RUNNER, Origin
from ..sync.table import ChangeEvent, SyncDB
from .cell_writes import SERVER_GONE, CellWrites

if TYPE_CHECKING:
    from .cell_run import CellRun

log = logging.getLogger(__name__)


class RunQueue(Protocol):
    """What the requests need of the runner."""

    @property
    def current(self) -> str | None:
        """The cell running now."""

    @property
    def queue(self) -> Collection[str]:
        """The cells waiting to run."""

    def run(self, cell_ids: Iterable[str], *, origin: Origin) -> list[str]: ...

    def run_of(self, cell_id: str) -> CellRun | None: ...

    def cell_deleted(self, cell_id: str) -> None: ...


class TableRunRequests:
    """Follows ``db``'s changes for ``runner`` (module docstring)."""

    def __init__(self, db: SyncDB, runner: RunQueue, writes: CellWrites) -> None:
        self.db = db
        self.runner = runner
        self.writes = writes
        self._unsubscribe: Callable[[], None] = db.on_change(self._on_change)

    def close(self) -> None:
        self._unsubscribe()

    def reset_stale_states(self) -> None:
        """Cells left queued or busy by a server that stopped: nothing is running them. A
        cell that was running says that its run was cut off."""
        states = self.db.field_values("state", {"type": "cell"})
        queued = [str(key[1]) for key, state in states.items() if state == "run"]
        running = [str(key[1]) for key, state in states.items() if state == "busy"]
        requested = [str(key[1]) for key, state in states.items() if state == "start"]
        if queued or running:
            with self.writes.batch() as origin:
                for cell_id in queued:
                    self.db.set({"type": "cell", "id": cell_id, "state": "idle"}, origin)
                for cell_id in running:
                    self.writes.cut_off(cell_id, SERVER_GONE)
            self.writes.commit()
        if requested:
            self.runner.run(sorted(requested, key=self._position), origin=RUNNER)

    def _position(self, cell_id: str) -> tuple[float, str]:
        return cell_order_key(self.db.peek(("cell", cell_id)) or {"id": cell_id})

    def _on_change(self, event: ChangeEvent) -> None:
        if self.writes.writing:
            return
        may_execute = event.origin.permissions.execute
        requested: list[str] = []
        refused: list[str] = []
        for key, change in event.changes.items():
            if key == SETTINGS_KEY:
                continue
            if len(key) != 2 or key[0] != "cell":
                continue
            cell_id = str(key[1])
            if change.action == "delete":
                self.runner.cell_deleted(cell_id)
                continue
            run = self.runner.run_of(cell_id) if "output" in change.fields else None
            if "state" not in change.fields and run is None:
                continue  # (typing: the record is not read, its text is not copied)
            record = self.db.peek(key) or {}
            if "state" in change.fields and record.get("state") == "start":
                (requested if may_execute else refused).append(cell_id)
            if run is not None:
                run.maybe_answered(record)
        if refused:
            self._refuse(refused)
        if requested:
            # several cells asked for in one change run in notebook order
            self.runner.run(sorted(requested, key=self._position), origin=event.origin)

    def _refuse(self, cell_ids: list[str]) -> None:
        """Run requests from a peer that may not execute: the cells get their state back
        (or a later open of the notebook would run them)."""
        log.warning("ignored a request to run %s from a client without kernels:execute", cell_ids)
        with self.writes.batch() as origin:
            for cell_id in cell_ids:
                state = (
                    "busy"
                    if cell_id == self.runner.current
                    else "run"
                    if cell_id in self.runner.queue
                    else "idle"
                )
                self.db.set({"type": "cell", "id": cell_id, "state": state}, origin)
        self.writes.commit()
