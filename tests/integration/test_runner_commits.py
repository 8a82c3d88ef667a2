"""How few changes a run makes: each one is a log write and a broadcast to every client.

A warm run is: the kernel's start with the outputs that came with it, cleared for the run
(one change: a cell that starts at once is not written queued first); the end with the
kernel's idle state. Each of those is one
transaction of the table too (each costs its observers). The kernel's activity
(jupyter_server's ``execution_state``, ``last_activity``) is recorded from the messages the
runner's connection reads, not by a second watcher decoding each again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers import eventually, write_notebook

from jupyter_cocalc_sync.format.schema import SETTINGS_KEY
from jupyter_cocalc_sync.origin import Origin, OriginKind
from jupyter_cocalc_sync.transport import protocol

#: what a test waits for at most while it holds the server's event loop (a hang, not a bound)
HOLD_LIMIT = 30.0


@contextmanager
def nothing_written_for_waiting(runner: Any) -> Iterator[None]:
    """The runner's pending writes (a start, a clearing) wait for what comes next, not for
    a timer: a count of changes that does not depend on the machine's load."""
    runner.writes.flush_interval = HOLD_LIMIT
    try:
        yield
    finally:
        runner.writes.flush_interval = runner.flush_interval


def cell_record(nb: Any) -> dict[str, Any]:
    return nb.get_one({"type": "cell", "id": "cell-0"}) or {}


def cell_state(nb: Any) -> Any:
    return cell_record(nb).get("state")


def opened(jp_serverapp: Any, path: str) -> Any:
    """The open notebook (document, runner…) of ``path`` in the in-process server."""
    documents = jp_serverapp.web_app.settings["cocalc_sync"].documents
    return documents._opened[documents.file_id(path)]


class Commits:
    """The cell and the settings as each of the runner's commits leaves them."""

    def __init__(self, db: Any, cell_id: str) -> None:
        self.db = db
        self.cell_id = cell_id
        self.seen: list[dict[str, Any]] = []
        self.stop = db.on_update(self._committed)

    def _committed(self, update: bytes, origin: Origin) -> None:
        if origin.kind is not OriginKind.RUNNER:
            return
        cell = self.db.read(("cell", self.cell_id)) or {}
        settings = self.db.read(SETTINGS_KEY) or {}
        self.seen.append({**cell, "kernel_state": settings.get("kernel_state")})


class Transactions:
    """Counts the transactions of the runner's own writes in a table."""

    def __init__(self, db: Any, runner: Any) -> None:
        self.count = 0
        self.runner = runner
        self.db = db
        self._subscription = db.doc.observe(self._observed)

    def _observed(self, _event: Any) -> None:
        if self.runner.writes.writing:
            self.count += 1

    def stop(self) -> None:
        self.db.doc.unobserve(self._subscription)


class HoldOnExecuteInput:
    """Holds the server's event loop when the kernel's ``execute_input`` is read, until the
    kernel has written ``marker``: the messages the kernel sends meanwhile then arrive
    together."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.held = False

    def on_iopub(self, msg: dict[str, Any], ours: bool) -> bool:
        if ours and msg["msg_type"] == "execute_input" and not self.held:
            self.held = True
            deadline = time.monotonic() + HOLD_LIMIT
            while not self.marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # (the loop is held on purpose: the test is about that)
        return False


async def test_a_warm_run_is_two_changes_and_what_arrives_together_is_one(
    server, root_dir, live, jp_serverapp
):
    marker = root_dir / "printed"
    together = (
        "import pathlib, time\nprint('a', flush=True)\nprint('b', flush=True)\n"
        # (time for the lines to reach the server before it is let go)
        f"time.sleep(0.2)\npathlib.Path({str(marker)!r}).touch()"
    )
    write_notebook(root_dir / "nb.ipynb", ["1 + 1", together])
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_idle()
    notebook = opened(jp_serverapp, "nb.ipynb")

    commits = Commits(notebook.document.db, "cell-0")
    with nothing_written_for_waiting(notebook.runner):
        await nb.run(["cell-0"])
        await nb.wait_for(
            lambda nb: nb.get_one({"type": "cell", "id": "cell-0"}).get("exec_count") == 2
        )
        await nb.wait_idle()
    commits.stop()
    states = [c.get("state") for c in commits.seen]
    # it started at once: not queued first, cleared in the change that shows it running
    assert "run" not in states, states
    assert states[0] in ("busy", "idle") and commits.seen[0].get("exec_count") == 2
    # the end says the kernel is idle too
    assert states[-1] == "idle" and commits.seen[-1]["kernel_state"] == "idle"
    assert states.count("idle") == 1

    commits = Commits(notebook.document.db, "cell-1")
    transactions = Transactions(notebook.document.db, notebook.runner)
    hold = HoldOnExecuteInput(marker)
    unobserve = notebook.runner.kernel.observe_iopub(hold)
    try:
        with nothing_written_for_waiting(notebook.runner):
            await nb.run(["cell-1"])
            await nb.wait_idle()
    finally:
        unobserve()
        commits.stop()
        transactions.stop()
    assert hold.held
    busy = [c for c in commits.seen if c.get("state") == "busy"]
    # the start and the lines that came with it are one change: none shows it busy without
    assert busy and all(c.get("output") for c in busy)
    # and one transaction (so is the end with the kernel's idle state): busy with its lines
    # (cleared for the run, which started at once), idle
    assert transactions.count <= 2, transactions.count


async def test_a_warm_run_that_starts_at_once_is_two_changes_and_never_queued(
    server, root_dir, live, jp_serverapp
):
    """A cell whose kernel is free is not written as queued (``run``) first: its clearing
    goes with its start and its output, then its end (docs/design.md)."""
    write_notebook(root_dir / "nb.ipynb", ["print('first')\nprint('second')"])
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_idle()
    notebook = opened(jp_serverapp, "nb.ipynb")
    nb.set({"type": "cell", "id": "cell-0", "input": "1 + 1"})
    nb.commit()
    await eventually(lambda: notebook.document.db.read(("cell", "cell-0"))["input"] == "1 + 1")
    commits = Commits(notebook.document.db, "cell-0")
    seen_by_client: list[Any] = []
    nb.on_change(lambda _event: seen_by_client.append(cell_state(nb)))
    try:
        with nothing_written_for_waiting(notebook.runner):
            await nb.run(["cell-0"])
            await nb.wait_for(lambda nb: cell_record(nb).get("exec_count") == 2)
            await nb.wait_idle()
    finally:
        commits.stop()
    states = [c.get("state") for c in commits.seen]
    assert len(commits.seen) <= 2, states
    assert "run" not in states and "run" not in seen_by_client, (states, seen_by_client)
    # the old outputs went in the change that shows the new one: none shows both
    first = commits.seen[0]
    assert first["state"] in ("busy", "idle") and len(first["output"]) == 1, first


async def test_a_cell_that_must_wait_is_shown_queued_at_once(server, root_dir, live, jp_serverapp):
    """A cell asked for while another runs is written as ``run`` (queued) at once."""
    marker = root_dir / "go"
    wait = (
        "import pathlib, time\nfor _ in range(3000):\n"
        f"    if pathlib.Path({str(marker)!r}).exists(): break\n    time.sleep(0.01)"
    )
    write_notebook(root_dir / "nb.ipynb", [wait, "2 + 2"])
    marker.touch()
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_idle()
    marker.unlink()
    notebook = opened(jp_serverapp, "nb.ipynb")
    await nb.run(["cell-0"])
    await nb.wait_for(lambda nb: cell_state(nb) == "busy")
    commits = Commits(notebook.document.db, "cell-1")
    try:
        # (at once: not when a timer writes what waits)
        with nothing_written_for_waiting(notebook.runner):
            await nb.run(["cell-1"])
            await nb.wait_for(
                lambda nb: nb.get_one({"type": "cell", "id": "cell-1"}).get("state") == "run"
            )
            marker.touch()
            await nb.wait_idle()
    finally:
        commits.stop()
    states = [c.get("state") for c in commits.seen]
    assert states[0] == "run", states
    assert states[-1] == "idle", states


async def test_the_runners_connection_records_the_kernels_activity(
    server, root_dir, live, jp_serverapp
):
    write_notebook(root_dir / "nb.ipynb", ["import time\ntime.sleep(0.5)"])
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_idle()
    kernel = opened(jp_serverapp, "nb.ipynb").runner.kernel
    km = jp_serverapp.kernel_manager.get_kernel(kernel.kernel_id)
    # jupyter_server's own watcher of the kernel is closed while the runner reads its iopub
    assert km._activity_stream is None
    before = km.last_activity

    await nb.run(["cell-0"])
    await eventually(lambda: km.execution_state == "busy", timeout=30)
    await nb.wait_idle()
    await eventually(lambda: km.execution_state == "idle", timeout=30)
    assert km.last_activity > before

    await kernel.close()  # (an attached kernel: only our connection goes)
    assert km._activity_stream is not None and not km._activity_stream.closed()


class SyncdbSends:
    """What the notebook's ``syncdb`` room sends its peers (document updates), and whether
    the table's latest log write was durable at each send."""

    def __init__(self, notebook: Any) -> None:
        self.table = notebook.document.table
        self.events: list[tuple[str, bool]] = []
        self.room = notebook.broadcast.rooms["syncdb"]
        for peer in self.room.peers:
            peer.send = self._watch(peer.send)

    def durable(self) -> bool:
        last = self.table.barrier()
        return last is None or last.done()

    def _watch(self, send: Any) -> Any:
        def watched(data: bytes, **kwargs: Any) -> None:
            message = protocol.decode(data)
            if message.kind == protocol.SYNC and message.sub == protocol.SYNC_UPDATE:
                self.events.append(("sent", self.durable()))
            send(data, **kwargs)

        return watched

    def stop(self) -> None:
        for peer in self.room.peers:
            del peer.send


async def warm_for_two_clients(root_dir: Path, live: Any, jp_serverapp: Any) -> tuple[Any, ...]:
    """Two SyncDB clients of a notebook ``1 + 1`` that ran once (its kernel is warm), and the
    open notebook in the server."""
    write_notebook(root_dir / "nb.ipynb", ["1 + 1"])
    a, b = await live(), await live()
    await a.run(["cell-0"])
    await a.wait_idle()
    return a, b, opened(jp_serverapp, "nb.ipynb")


@contextmanager
def replaced(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """``owner``'s method ``name`` is ``replacement`` until the block ends."""
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        delattr(owner, name)


async def run_again(a: Any, b: Any) -> None:
    """``a`` runs the cell a second time; until ``b`` saw its result and ``a`` its end."""
    await a.run(["cell-0"])
    await b.wait_for(lambda nb: cell_record(nb).get("exec_count") == 2)
    await a.wait_idle()


async def test_a_peers_run_request_reaches_the_kernel_once_durable_before_any_client(
    server, root_dir, live, jp_serverapp
):
    """The execute request of a cell that starts at once is sent in the call that wrote the
    peer's request to the log, before the other clients are sent it (their processes,
    woken, would take the CPU the kernel needs): never before it is durable."""
    a, b, notebook = await warm_for_two_clients(root_dir, live, jp_serverapp)
    kernel = notebook.runner.kernel
    sends = SyncdbSends(notebook)
    assert len(sends.room.peers) == 2
    execute_code = kernel.execute_code

    def watched_execute_code(code: str, **kwargs: Any) -> Any:
        sends.events.append(("kernel", sends.durable()))
        return execute_code(code, **kwargs)

    try:
        with replaced(kernel, "execute_code", watched_execute_code):
            await run_again(a, b)
    finally:
        sends.stop()
    assert sends.events[0] == ("kernel", True), sends.events
    assert all(durable for _, durable in sends.events), sends.events


async def test_a_runner_commit_is_written_and_sent_in_the_call_that_made_it(
    server, root_dir, live, jp_serverapp
):
    """A run's output (and end) is sent to the clients when the runner commits it, not after
    the change log's flush task and the callbacks of its write have run (two loop turns)."""
    a, b, notebook = await warm_for_two_clients(root_dir, live, jp_serverapp)
    sends = SyncdbSends(notebook)
    versions = notebook.runner.versions
    commit = versions.commit
    after_commits: list[tuple[int, bool]] = []

    def watched_commit(origin: Origin) -> None:
        before = len(sends.events)
        commit(origin)
        after_commits.append((len(sends.events) - before, sends.durable()))

    try:
        with replaced(versions, "commit", watched_commit):
            await run_again(a, b)
    finally:
        sends.stop()
    # each commit that changed the table was durable and sent (to both clients) on return
    changed = [commit for commit in after_commits if commit[0]]
    assert changed and all(commit == (2, True) for commit in changed), after_commits
    assert all(durable for _, durable in sends.events), sends.events
