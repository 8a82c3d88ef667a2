"""``CellRun``: how the kernel's messages of one run become changes of the table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from jupyter_cocalc_sync.execution.cell_run import CellRun
from jupyter_cocalc_sync.execution.cell_writes import CellWrites
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import RUNNER
from jupyter_cocalc_sync.outputs.handler import OutputHandler
from jupyter_cocalc_sync.sync.table import ChangeEvent, RecordChange, SyncDB

CELL = "one"


class Versions:
    """Commits the table as the runner's ``RunVersions`` does (without a change log)."""

    def __init__(self, db: SyncDB) -> None:
        self.db = db

    def commit(self, origin: Any) -> None:
        self.db.commit(origin)


class Emitter:
    """The messages of one execute request, handed over by the test as the kernel sends them
    (``pending`` as ``CodeExecutionEmitter`` says it: more are here already)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.reply: dict[str, Any] | None = {"status": "ok"}
        #: set while the run waits for the kernel's next message (all were taken)
        self.waiting = asyncio.Event()

    @property
    def pending(self) -> bool:
        return not self.inbox.empty()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            if self.inbox.empty():
                self.waiting.set()
            msg = await self.inbox.get()
            self.waiting.clear()
            if msg is None:
                return
            yield msg

    async def send(self, msg_type: str, content: dict[str, Any]) -> None:
        """The kernel sends one message, alone: the run takes it before the next comes."""
        self.inbox.put_nowait({"msg_type": msg_type, "header": {"msg_type": msg_type}, **content})
        self.waiting.clear()
        await self.waiting.wait()


class Kernel:
    def __init__(self, emitter: Emitter) -> None:
        self.emitter = emitter

    def execute_code(self, code: str) -> Emitter:
        return self.emitter

    async def signal(self, name: str) -> None:
        raise AssertionError("no interrupt was asked for")


def cell_run(
    db: SyncDB, emitter: Emitter, flush_interval: float, busy_after: float = 60.0
) -> CellRun:
    handler = OutputHandler(CELL)
    writes = CellWrites(
        db,
        Versions(db),  # type: ignore[arg-type]
        flush_interval,
        lambda: handler,
        busy_after=busy_after,
    )
    return CellRun(
        Kernel(emitter),  # type: ignore[arg-type]
        handler,
        writes,
        interrupt_requested=lambda: False,
        last_of_batch=lambda: True,
    )


def notebook() -> tuple[SyncDB, list[dict[str, set[str]]]]:
    """A notebook with one code cell, and the changes of its cell as they are committed."""
    db = notebook_syncdb()
    db.set({"type": "cell", "id": CELL, "input": "1+1", "state": "run"}, RUNNER)
    db.set({"type": "settings", "id": "main", "kernel_state": "idle"}, RUNNER)
    db.commit(RUNNER)
    changes: list[dict[str, set[str]]] = []

    def changed(event: ChangeEvent) -> None:
        changes.append({str(key[0]): set(change.fields) for key, change in event.changes.items()})

    db.on_change(changed)
    return db, changes


EXECUTE_INPUT = {"content": {"code": "1+1", "execution_count": 1}}
RESULT = {
    "content": {"data": {"text/plain": "2"}, "metadata": {}, "execution_count": 1},
}


async def quick_run(run: CellRun, emitter: Emitter, changes: list[dict[str, set[str]]]) -> None:
    """``1+1`` as the kernel runs it, each message read alone: two changes, the start with
    the output, then the end; the kernel, busy for less than the flush interval, is never
    said busy (nor idle again)."""
    running = asyncio.ensure_future(run.execute("1+1"))
    await emitter.send("execute_input", EXECUTE_INPUT)
    await emitter.send("execute_result", RESULT)
    emitter.inbox.put_nowait(None)
    assert await running

    assert changes == [
        {"cell": changes[0]["cell"]},
        {"cell": changes[1]["cell"]},
    ], changes
    start, end = changes
    assert {"state", "start", "exec_count", "output"} <= start["cell"]
    assert {"state", "end"} <= end["cell"]


async def test_a_start_and_the_output_that_follows_it_alone_are_one_change() -> None:
    """A quick cell's output comes a millisecond or two after the kernel began it, in a read
    of its own: the cell's start (busy, its start time) waits for it, one change, not two."""
    db, changes = notebook()
    emitter = Emitter()
    await quick_run(cell_run(db, emitter, 60.0), emitter, changes)
    assert db.read(("cell", CELL))["state"] == "idle"


async def test_a_run_that_goes_on_says_the_kernel_busy_then_idle() -> None:
    """A cell that printed at once and runs on: its start and output are one change, the
    kernel's busy state another, once the run has gone on for ``busy_after``; its end says
    the kernel idle again."""
    db, changes = notebook()
    emitter = Emitter()
    busy = asyncio.Event()
    db.on_change(lambda event: busy.set() if ("settings", "main") in event.changes else None)
    run = cell_run(db, emitter, 60.0, busy_after=0.01)
    running = asyncio.ensure_future(run.execute("print(1); sleep(1)"))
    await emitter.send("execute_input", EXECUTE_INPUT)
    await emitter.send("stream", stream("1\n"))
    assert changes == [{"cell": {"state", "start", "exec_count", "output"}}], changes
    async with asyncio.timeout(30):  # (a hang, not a speed bound)
        await busy.wait()
    assert changes[1:] == [{"settings": {"kernel_state"}}], changes
    assert db.read(("settings", "main"))["kernel_state"] == "busy"

    emitter.inbox.put_nowait(None)
    assert await running
    assert db.read(("settings", "main"))["kernel_state"] == "idle"
    assert db.read(("cell", CELL))["state"] == "idle"


async def test_a_start_with_no_output_after_it_is_written_after_the_flush_interval() -> None:
    """A cell that prints nothing for a while shows busy all the same, once the start has
    waited ``flush_interval`` for an output; the kernel's busy state, due then too, goes
    with it: one change."""
    db, changes = notebook()
    emitter = Emitter()
    written = asyncio.Event()
    db.on_change(lambda _event: written.set())
    running = asyncio.ensure_future(cell_run(db, emitter, 0.01, busy_after=0.01).execute("1+1"))
    await emitter.send("execute_input", EXECUTE_INPUT)
    async with asyncio.timeout(30):  # (a hang, not a speed bound)
        await written.wait()
    assert changes == [{"cell": {"state", "start", "exec_count"}, "settings": {"kernel_state"}}]
    assert db.read(("cell", CELL))["state"] == "busy"

    await emitter.send("execute_result", RESULT)
    emitter.inbox.put_nowait(None)
    assert await running
    assert db.read(("cell", CELL))["state"] == "idle"


def requested_with_old_outputs(db: SyncDB) -> None:
    """The cell ran before (its output, its count) and a client asks for a run again."""
    old = {"0": {"output_type": "stream", "name": "stdout", "text": "old\n"}}
    db.set({"type": "cell", "id": CELL, "state": "start", "output": old, "exec_count": 7}, RUNNER)
    db.commit(RUNNER)


async def test_a_cell_that_starts_at_once_is_cleared_and_shown_running_with_its_output() -> None:
    """A cell that starts at once is not written queued first: its clearing (and ``run``)
    goes in the change that shows its start and its first output, one change fewer."""
    db, changes = notebook()
    requested_with_old_outputs(db)
    changes.clear()
    emitter = Emitter()
    run = cell_run(db, emitter, 60.0)
    run.writes.clear_for_run(CELL, RUNNER, state="run")
    await quick_run(run, emitter, changes)
    record = db.read(("cell", CELL))
    assert record["state"] == "idle" and record["exec_count"] == 1
    # the old output went in the same change as the new came (none shows both)
    assert record["output"] == {"0": {"output_type": "execute_result", **RESULT["content"]}}


async def test_a_rerun_that_prints_the_same_leaves_that_output_as_it_is_in_the_document() -> None:
    """A cell's outputs are replaced by its run's in place: an output the same as before is
    no change of the document (no copy of it in the history, nor sent to any client), one
    that the run did not print is gone, in the change that shows the run's start."""
    db, _changes = notebook()
    same = {"output_type": "stream", "name": "stdout", "text": "same\n"}
    old = {"0": same, "1": {"output_type": "stream", "name": "stderr", "text": "old\n"}}
    db.set({"type": "cell", "id": CELL, "state": "start", "output": old, "exec_count": 7}, RUNNER)
    db.commit(RUNNER)
    cell_changes: list[RecordChange] = []
    db.on_change(lambda event: cell_changes.extend(event.changes.values()))
    emitter = Emitter()
    run = cell_run(db, emitter, 60.0)
    run.writes.clear_for_run(CELL, RUNNER, state="run")
    running = asyncio.ensure_future(run.execute("print('same')"))
    await emitter.send("execute_input", EXECUTE_INPUT)
    await emitter.send("stream", stream("same\n"))
    emitter.inbox.put_nowait(None)
    assert await running

    start = next(change for change in cell_changes if "start" in change.fields)
    assert "output" not in start.replaced and start.entries == {"output": {"1"}}
    record = db.read(("cell", CELL))
    assert record["output"] == {"0": same} and record["exec_count"] == 1


async def test_a_cell_the_kernel_has_not_begun_within_the_flush_interval_shows_run() -> None:
    """When the kernel does not begin the cell within ``flush_interval``, the cell is shown
    queued (``run``), cleared for its run, then."""
    db, changes = notebook()
    requested_with_old_outputs(db)
    changes.clear()
    written = asyncio.Event()
    db.on_change(lambda _event: written.set())
    run = cell_run(db, Emitter(), 0.01)
    run.writes.clear_for_run(CELL, RUNNER, state="run")
    async with asyncio.timeout(30):  # (a hang, not a speed bound)
        await written.wait()
    assert changes == [{"cell": {"state", "output", "exec_count", "metadata"}}], changes
    record = db.read(("cell", CELL))
    assert record["state"] == "run" and not record.get("output") and "exec_count" not in record


def stream(text: str) -> dict[str, Any]:
    return {"content": {"name": "stdout", "text": text}}


def written_text(db: SyncDB) -> str:
    outputs = db.read(("cell", CELL))["output"] or {}
    return "".join(output.get("text", "") for _index, output in sorted(outputs.items()))


async def test_a_line_the_kernel_sends_in_two_messages_is_written_whole_at_once() -> None:
    """ipykernel may publish a printed line in two messages (its own flush timer fires
    between the text and its newline): the second is written at once too, not a
    ``flush_interval`` later, so the line is seen whole as it comes."""
    db, _changes = notebook()
    emitter = Emitter()
    running = asyncio.ensure_future(cell_run(db, emitter, 60.0).execute("print('output 1')"))
    await emitter.send("execute_input", EXECUTE_INPUT)
    await emitter.send("stream", stream("output 1"))
    await emitter.send("stream", stream("\n"))
    assert written_text(db) == "output 1\n"
    emitter.inbox.put_nowait(None)
    assert await running


async def test_a_flood_is_written_once_per_interval_after_the_quick_writes() -> None:
    """Past the writes that go at once, a run's outputs wait for the flush interval."""
    db, _changes = notebook()
    emitter = Emitter()
    running = asyncio.ensure_future(cell_run(db, emitter, 60.0).execute("print(...)"))
    await emitter.send("execute_input", EXECUTE_INPUT)
    for line in ("1\n", "2\n", "3\n", "4\n"):
        await emitter.send("stream", stream(line))
    assert written_text(db) == "1\n2\n"
    emitter.inbox.put_nowait(None)
    assert await running
    assert written_text(db) == "1\n2\n3\n4\n"  # (the run's end writes the rest)
