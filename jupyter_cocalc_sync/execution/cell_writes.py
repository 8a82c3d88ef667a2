"""``CellWrites``: how the runner writes into the notebook's table.

Every write of the runner goes through here: a cell's state as it starts and ends, its outputs
(at most every ``flush_interval`` seconds during a flood, after the ``QUICK_WRITES`` that go at
once: ``flush_soon``), errors of the
runner's own (a dead kernel), display updates for other cells, and the settings record. Each is
committed as made for whoever asked for the running cell (``origin``), through the run's
``RunVersions`` (so a run's versions are squashed when it ends). ``writing`` is true while the
runner writes, so the runner can tell its own changes from clients' requests.

The settings record's fields the runner reads and writes (the kernel's state; the output
limits, once a run) are remembered as last read or written, until a change of that record that
is not the runner's own: a warm run then reads none of them from the document.

The kernel's state says ``busy`` once the kernel has been running the batch's cells for
``busy_after`` seconds (``RUNNING_SHOWN_AFTER``, as the batch's progress: ``activity.py``; with
the start, when that is written then), and ``idle`` when the batch ends; a batch that ends
sooner leaves it ``idle``. A state that would be ``busy`` for a few milliseconds tells nobody
anything, and each write of it is a change every client decodes and the change log keeps, on
the path of the cell's output (``docs/design.md``, "The kernel's state").

A cell's start (``started``) is written with what comes next — its outputs, or its end — in
one transaction, at the latest ``flush_interval`` seconds after the kernel began (or when the
runner commits): the kernel's messages that arrive together are one change, the output of a
quick cell, which follows its start by a millisecond or two, too; and each transaction of the
table costs its observers (the change log's update, the change events, the rooms' guards)
whatever it holds. So does the clearing of a cell's outputs for its run (``clear_for_run``,
with its ``run`` state when it starts at once: ``docs/design.md``, "A cell that starts at
once"): it waits, at most ``flush_interval`` seconds, for the start to go with it, in one write
of the cell with it and its outputs (``_write_pending``): the run's outputs replace the old in
place, an output the same as before is no change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..format.schema import SETTINGS_KEY
from ..origin import RUNNER, Origin
from ..outputs.handler import OutputHandler
from ..sync.table import ChangeEvent, SyncDB
from ..sync.values import json_copy
from .activity import RUNNING_SHOWN_AFTER
from .run_versions import RunVersions

#: ``ename`` of the error that ends a run the server did not see to its end
CUT_OFF_ENAME = "RunCutOff"
#: what it says: the server stopped while the cell ran, or it was gone (killed, crashed) and
#: finds the cell still marked running when it opens the notebook again
SERVER_STOPPED = "the server stopped while this cell was running; the run was cut off here"
SERVER_GONE = (
    "the server stopped (it was killed or crashed) while this cell was running; "
    "the run was cut off here and its kernel is gone"
)


#: how many writes of a run's outputs go at once, one right after the other, when there was
#: none for ``flush_interval`` (a run's first output is one): a line the kernel happened to
#: publish in two messages (ipykernel flushes on a timer of its own as well) is seen whole at
#: once, not its end ``flush_interval`` later; a flood is held to one write per interval
#: after them
QUICK_WRITES = 2


def now_ms() -> float:
    return time.time() * 1000


class CellWrites:
    """The runner's writes into one notebook's table (module docstring)."""

    def __init__(
        self,
        db: SyncDB,
        versions: RunVersions,
        flush_interval: float,
        current_handler: Callable[[], OutputHandler | None],
        *,
        busy_after: float = RUNNING_SHOWN_AFTER,
    ) -> None:
        self.db = db
        self.versions = versions
        self.flush_interval = flush_interval
        #: seconds of a batch before the kernel is said busy (module docstring)
        self.busy_after = busy_after
        self._current = current_handler
        #: the origin of the writes for the running cell: the runner, for whoever asked
        self.origin: Origin = RUNNER
        self.writing = False
        #: when outputs were last written (0: the next output is written at once)
        self.last_flush = 0.0
        #: of the ``QUICK_WRITES`` begun by the last write after a quiet interval, how many
        #: may still go at once
        self._quick_writes_left = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        #: the running cell's start (``started``), not written yet
        self._started: dict[str, Any] | None = None
        #: the next cell's clearing for its run (``clear_for_run``), not written yet, and for
        #: whom it is made
        self._clear: tuple[dict[str, Any], Origin] | None = None
        #: writes the pending clearing and start when nothing took them along before
        self._pending_timer: asyncio.TimerHandle | None = None
        #: says the kernel busy once its batch has gone on for ``busy_after``
        self._busy_timer: asyncio.TimerHandle | None = None
        #: fields of the settings record as last read or written here (module docstring)
        self._settings: dict[str, Any] = {}
        self._unsubscribe = db.on_change(self._on_change)

    def close(self) -> None:
        self._unsubscribe()
        self._forget_started()
        self._cancel_pending_timer()
        self._cancel_busy_timer()

    def _on_change(self, event: ChangeEvent) -> None:
        if SETTINGS_KEY in event.changes and not self.writing:
            self._settings.clear()  # changed by someone else: read again when needed

    def commit(self, origin: Origin | None = None) -> None:
        """Commit the runner's writes as ``origin``'s (default: as made for whoever asked for
        the running cell)."""
        if self._started is not None or self._clear is not None:
            with self.batch() as made_by:
                self._write_pending(made_by)
        self.versions.commit(origin or self.origin)

    def commit_written(self, origin: Origin) -> None:
        """Commit what was written as ``origin``'s, not the pending clearing or start (they
        wait for what comes next: module docstring)."""
        self.versions.commit(origin)

    def started(self, cell_id: str, handler: OutputHandler) -> None:
        """The kernel began running the cell: written with the cell's next write (its
        outputs, its end) or at the next commit, whichever comes first."""
        record = {"type": "cell", "id": cell_id, "state": "busy", "start": now_ms()}
        if handler.exec_count is not None:
            record["exec_count"] = handler.exec_count
        self._started = record
        if self._busy_timer is None and self.settings("kernel_state")[0] != "busy":
            self._busy_timer = asyncio.get_running_loop().call_later(
                self.busy_after, self._busy_timer_fired
            )

    def _busy_timer_fired(self) -> None:
        self._busy_timer = None
        with self.batch() as made_by:
            self._write_pending(made_by)  # (the start, if it still waits: one change)
            self.set_settings(kernel_state="busy")
        self.commit()

    def _busy_if_due(self) -> None:
        """Say the kernel busy now if its timer is due (a start written by its own timer,
        due at the same moment, takes the state along: one change)."""
        timer = self._busy_timer
        if timer is not None and timer.when() <= asyncio.get_running_loop().time():
            self._cancel_busy_timer()
            self.set_settings(kernel_state="busy")

    def _cancel_busy_timer(self) -> None:
        if self._busy_timer is not None:
            self._busy_timer.cancel()
            self._busy_timer = None

    def kernel_idle(self) -> None:
        """The kernel's batch ended: it is idle (written only if it was said busy)."""
        self._cancel_busy_timer()
        self.set_settings(kernel_state="idle")

    def write_start_soon(self) -> None:
        """Commit the pending start ``flush_interval`` seconds from now (or with the pending
        clearing, if that is due sooner), unless a write before then takes it along (module
        docstring)."""
        if self._started is not None:
            self._write_pending_soon()

    def _write_pending_soon(self) -> None:
        if self._pending_timer is None:
            self._pending_timer = asyncio.get_running_loop().call_later(
                self.flush_interval, self._pending_timer_fired
            )

    def _pending_timer_fired(self) -> None:
        self._pending_timer = None
        clear = self._clear
        if clear is None:
            self.commit()
            return
        if clear[1] != self.origin:  # (made before its cell's run began: as its own)
            with self.batch(clear[1]) as made_by:
                self._write_clear(made_by)
        self.commit(clear[1])

    def _cancel_pending_timer(self) -> None:
        if self._pending_timer is not None:
            self._pending_timer.cancel()
            self._pending_timer = None

    def _forget_started(self) -> None:
        self._started = None
        if self._clear is None:
            self._cancel_pending_timer()

    def forget_clear(self, cell_id: str) -> None:
        """The cell left the queue before its run began: it is not cleared for it."""
        if self._clear is not None and self._clear[0]["id"] == cell_id:
            self._clear = None
            if self._started is None:
                self._cancel_pending_timer()

    def _write_clear(self, made_by: Origin) -> None:
        """Write the pending clearing (inside a batch made by ``made_by``), before any other
        write of its cell."""
        clear, self._clear = self._clear, None
        if clear is None:
            return
        if self._started is None:
            self._cancel_pending_timer()
        if self.db.has(("cell", clear[0]["id"])):
            self.db.set(clear[0], made_by)

    def _write_started(self, *, kernel_idle: bool = False) -> None:
        """Write the pending start (inside a batch); the kernel is said busy with it if it is
        due to be, unless ``kernel_idle`` (it is done already: it is said idle instead)."""
        started = self._started
        if started is None:
            return
        self._forget_started()
        if self.db.has(("cell", started["id"])):
            self.db.set(started, self.origin)
        if not kernel_idle:
            self._busy_if_due()

    def _write_pending(
        self,
        made_by: Origin,
        record: dict[str, Any] | None = None,
        *,
        kernel_idle: bool = False,
    ) -> None:
        """Write ``record`` (a cell's, by default the pending start's or clearing's) inside a
        batch made by ``made_by``, with the pending start and clearing: those of its cell
        are merged into it, one write (its fields win over the start's — a run that ended
        is ``idle``, not ``busy`` —, the start's over the clearing's, which came first);
        another cell's are written as they are. The kernel is said busy with a start if it is
        due to be, unless ``kernel_idle``."""
        if record is None:
            pending = self._started or (self._clear[0] if self._clear is not None else None)
            if pending is None:
                return
            record = {"type": "cell", "id": pending["id"]}
        replace = self._merge_pending(record, kernel_idle=kernel_idle)
        self._write_clear(made_by)
        self._write_started(kernel_idle=kernel_idle)
        if len(record) > 2 and self.db.has(("cell", record["id"])):
            self.db.set(record, made_by, replace=replace)

    def _merge_pending(self, record: dict[str, Any], *, kernel_idle: bool) -> tuple[str, ...]:
        """Merge the pending start and clearing of ``record``'s cell into it (``_write_pending``);
        returns the map columns it replaces as a whole: the outputs, when it has some and the
        clearing was pending (the new outputs replace the old in place: an output that is the
        same as before is no change in the document, nor for any client)."""
        cell_id = record["id"]
        started = self._started
        if started is not None and started["id"] == cell_id:
            self._forget_started()
            record.update({k: v for k, v in started.items() if k not in record})
            if not kernel_idle:
                self._busy_if_due()
        clear = self._clear
        if clear is None or clear[0]["id"] != cell_id:
            return ()
        self._clear = None
        if self._started is None:
            self._cancel_pending_timer()
        replace = ("output",) if record.get("output") is not None else ()
        record.update({k: v for k, v in clear[0].items() if k not in record})
        return replace

    def clear_for_run(
        self, cell_id: str, origin: Origin | None = None, *, state: str | None = None
    ) -> None:
        """The cell's outputs, count and end go as its run starts, with its ``state`` if
        given: written with the cell's next write (its start, an output, its end) or at the
        next commit, at the latest ``flush_interval`` seconds from now (module docstring)."""
        record: dict[str, Any] = {
            "type": "cell",
            "id": cell_id,
            "end": None,
            "output": None,
            "exec_count": None,
            # what the server runs for a collaborator is trusted, for every collaborator
            # (JupyterLab reads the cell's metadata.trusted; the saved file is then signed)
            "metadata": {"trusted": True},
        }
        if state is not None:
            record["state"] = state
        if self._clear is not None:  # (another cell's, due: it goes first)
            with self.batch(origin) as made_by:
                self._write_clear(made_by)
        self._clear = (record, origin or self.origin)
        self._write_pending_soon()

    def flush_soon(self, cell_id: str) -> None:
        """Write now if the last write was long enough ago, or it began the ``QUICK_WRITES``
        that go at once, else once the interval is over."""
        if self._flush_timer is not None:
            return
        wait = self.last_flush + self.flush_interval - time.monotonic()
        if wait <= 0 or self._quick_writes_left > 0:
            if wait <= 0:
                self._quick_writes_left = QUICK_WRITES
            self._quick_writes_left -= 1
            self.flush(cell_id, self._current())
        else:
            self._flush_timer = asyncio.get_running_loop().call_later(
                wait, self._flush_timer_fired, cell_id
            )

    def _flush_timer_fired(self, cell_id: str) -> None:
        self._flush_timer = None
        handler = self._current()
        if handler is not None and handler.cell_id == cell_id:
            self.flush(cell_id, handler)

    def cancel_flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    def flush(
        self,
        cell_id: str,
        handler: OutputHandler | None,
        *,
        final: bool = False,
        kernel_idle: bool = False,
    ) -> None:
        """Write the cell's new outputs (and, ``final``, its end; ``kernel_idle``, the
        kernel's state with it) in one transaction with its pending start, and commit."""
        if handler is None:
            return
        self.last_flush = time.monotonic()
        patch = handler.take_patch()
        record: dict[str, Any] = {"type": "cell", "id": cell_id}
        record_key = ("cell", cell_id)
        if patch:
            record["output"] = patch
        if handler.exec_count is not None:
            record["exec_count"] = handler.exec_count
        if final:
            record.update(state="idle", end=now_ms())
        pending = self._started is not None or self._clear is not None
        if not pending and not kernel_idle and (len(record) == 2 or not self.db.has(record_key)):
            return
        with self.batch() as origin:
            self._write_pending(origin, record, kernel_idle=kernel_idle)
            if kernel_idle:
                self.kernel_idle()
        self.commit()

    def finish_with_error(self, cell_id: str, ename: str, evalue: str) -> None:
        self._forget_started()  # (the run is over: its end says so)
        if self.db.peek(("cell", cell_id)) is None:
            return
        error = {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [evalue]}
        with self.batch() as origin:
            record = {
                "type": "cell",
                "id": cell_id,
                "state": "idle",
                "end": now_ms(),
                "output": {"0": error},
            }
            self._write_pending(origin, record)
        self.commit()

    def cut_off(self, cell_id: str, reason: str) -> None:
        """End a run the server could not finish (it stopped while the cell ran): the outputs
        so far stay, and an error after them says what happened, in every client and the
        file."""
        self._forget_started()  # (the run is over: its end says so)
        if self._clear is not None and self._clear[0]["id"] == cell_id:
            with self.batch() as made_by:
                self._write_clear(made_by)  # (the outputs so far are those after it)
        record = self.db.peek(("cell", cell_id))
        if record is None:
            return
        outputs = record.get("output") or {}
        after = max((int(key) for key, value in outputs.items() if value is not None), default=-1)
        error = {
            "output_type": "error",
            "ename": CUT_OFF_ENAME,
            "evalue": reason,
            "traceback": [f"{CUT_OFF_ENAME}: {reason}"],
        }
        with self.batch() as origin:
            self.db.set(
                {
                    "type": "cell",
                    "id": cell_id,
                    "state": "idle",
                    "end": record.get("end") or now_ms(),
                    "output": {str(after + 1): error},
                },
                origin,
            )

    def write_display(self, cell_id: str, index: int, update: dict[str, Any]) -> None:
        """An ``update_display_data`` for a display shown in another cell."""
        record = self.db.peek(("cell", cell_id))
        current = ((record or {}).get("output") or {}).get(str(index))
        if not isinstance(current, dict):
            return
        patched = {**current, "data": update["data"], "metadata": update["metadata"]}
        with self.batch() as origin:
            self.db.set({"type": "cell", "id": cell_id, "output": {str(index): patched}}, origin)
        self.commit()

    def settings(self, *names: str) -> list[Any]:
        """Fields of the settings record (``None`` if unset), as last read or written here,
        else read without the others."""
        known = self._settings
        missing = [name for name in names if name not in known]
        if missing:
            # (read whole, and cached: the table's writes of it then read nothing)
            settings = self.db.peek(SETTINGS_KEY) or {}
            for name in missing:
                known[name] = json_copy(settings.get(name))
        return [known[name] for name in names]

    def set_settings(self, **fields: Any) -> None:
        current = self.settings(*fields)
        changed = {
            k: v
            for (k, v), now in zip(fields.items(), current, strict=True)
            if k == "metadata" or now != v
        }
        if not changed:
            return
        with self.batch() as origin:
            self.db.set({"type": SETTINGS_KEY[0], "id": SETTINGS_KEY[1], **changed}, origin)
        for name, value in changed.items():
            if isinstance(value, str) or value is None:
                self._settings[name] = value  # stored as given
            else:
                self._settings.pop(name, None)  # (an object is merged into what is stored)

    @contextmanager
    def batch(self, origin: Origin | None = None) -> Iterator[Origin]:
        """Writes of the runner itself (their change events are not requests), as
        ``origin``'s (default: for whoever asked for the running cell); yields the origin
        the writes are made with."""
        origin = origin or self.origin
        previous, self.writing = self.writing, True
        try:
            with self.db.transaction(origin):
                yield origin
        finally:
            self.writing = previous
