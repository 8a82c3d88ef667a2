"""Running one sequence of operations against one server, and what came of it."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import nbformat
from helpers import Server, eventually
from process_guard import owned_by_session

from .assigned_ids import AssignedIds
from .clients import LabClient, connect, save
from .ops import Op
from .stacks import OurServer, StockServer, log_size, problems

T = TypeVar("T")
_paths = itertools.count()


class LoopThread:
    """One event loop for the whole session, in a thread: the servers' HTTP clients live as
    long as the servers, and hypothesis's synchronous examples can still await."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Target:
    """One running server and an HTTP client of it."""

    name: str
    process: StockServer | OurServer
    client: Server

    @property
    def ours(self) -> bool:
        return isinstance(self.process, OurServer)

    def write(self, path: str, notebook: dict[str, Any]) -> None:
        (self.process.root / path).write_text(nbformat.writes(nbformat.from_dict(notebook)))

    async def read(self, path: str) -> dict[str, Any]:
        """The saved file, once it parses: jupyter_server's "atomic" writing truncates the
        file and writes it in place (the old content is only kept aside), so a reader can
        meet it empty or half written."""
        file = self.process.root / path
        problem: list[json.JSONDecodeError] = []

        def parsed() -> dict[str, Any] | None:
            try:
                return cast(dict[str, Any], json.loads(file.read_text()))
            except json.JSONDecodeError as error:
                problem[:] = [error]
                return None

        try:
            return await eventually(parsed, timeout=30)
        except TimeoutError:
            raise AssertionError(f"{self.name}: {file} does not parse: {problem}") from None

    async def rest(self, path: str) -> tuple[list[dict[str, Any]], int]:
        """Ours: the REST records of ``path`` and how many versions its history has."""
        base = f"/api/cocalc-sync/notebooks/{path}"
        records = await self.client.http.get(base)
        records.raise_for_status()
        history = await self.client.http.get(f"{base}/history")
        history.raise_for_status()
        return records.json()["records"], len(history.json()["versions"])


@dataclass
class Outcome:
    """What one server made of a sequence."""

    live: dict[str, Any]  # the acting client
    observer: dict[str, Any]  # a client connected throughout
    joiner: dict[str, Any]  # a client connected after the sequence
    file: dict[str, Any]  # the .ipynb after a save
    save_status: str
    errors: list[str]  # ERROR records and tracebacks the server logged meanwhile
    #: ids the server gave cells the acting client inserted: new id → the id inserted with
    assigned: dict[str, str] = field(default_factory=dict)
    misplaced: list[str] = field(default_factory=list)  # new ids given to cells not inserted
    records: list[dict[str, Any]] = field(default_factory=list)  # ours: REST records
    versions: tuple[int, int] = (0, 0)  # ours: history length before and after


def new_path() -> str:
    return f"seq-{next(_paths)}.ipynb"


async def settled(*clients: LabClient) -> None:
    """Until every client holds what every other one does: the same state vector (what was
    inserted) and the same content (deletions do not show in a state vector)."""

    def same() -> bool:
        first = clients[0].state_vector()
        if not all(c.state_vector() == first for c in clients[1:]):
            return False
        view = clients[0].view()
        return all(c.view() == view for c in clients[1:])

    await eventually(same, *(c.doc for c in clients), timeout=30)


async def apply_all(
    ops: Sequence[Op], actor: LabClient, observer: LabClient, assigned: AssignedIds
) -> None:
    for op in ops:
        assigned.operation_starts()
        op.apply(actor)
        await settled(actor, observer)


async def finish(target: Target, path: str, actor: LabClient, observer: LabClient) -> dict:
    """The views, a save, the file and a joining client's view, once both clients agree."""
    await settled(actor, observer)
    live, seen = actor.view(), observer.view()
    status, joined = await save_until_unchanged(target, path)
    return {"live": live, "observer": seen, "joiner": joined, "save_status": status}


async def save_until_unchanged(target: Target, path: str) -> tuple[str, dict[str, Any]]:
    """Save ``path`` until a save leaves the notebook as it found it; that save's answer and
    what a client joining after it sees.

    Stock answers "success" to a save that a change made while saving cancelled, and its
    save makes such a change itself while a cell id is shared by cells that differ: it
    renames the later cell, one such id per save (each rename cancels that save). With n
    such ids its first n saves write nothing, and the last rename's autosave may be
    writing the file a second later. A save that changes nothing is not cancelled (no
    client edits meanwhile) and has written the file before it is answered.
    """
    before = await joiner_view(target, path)
    answers = []
    # each cancelled save renames a cell to a new uuid: at most one per cell
    for _ in range(len(before["cells"]) + 2):
        log_from = log_size(target.process)
        status = await save(target.client, path)
        after = await joiner_view(target, path)
        unchanged = _notebook(after) == _notebook(before)
        if unchanged and status == "success":
            process = target.process
            if isinstance(process, StockServer) and not process.wrote(path, log_from):
                # the file would be stale: a difference of the harness, not of ours
                raise AssertionError(f"stock answered 'success' to a save of {path} it did not do")
            return status, after
        answers.append(f"{status} ({'unchanged' if unchanged else 'changed'})")
        before = after
    raise AssertionError(
        f"{target.name}: no save of {path} both succeeded and changed nothing: {answers}"
    )


def _notebook(view: dict[str, Any]) -> dict[str, Any]:
    """A client's view without the ``state`` map (each server's save writes its own
    bookkeeping there)."""
    return {"meta": view["meta"], "cells": view["cells"]}


async def run_sequence(
    target: Target, path: str, notebook: dict[str, Any] | None, ops: Sequence[Op]
) -> Outcome:
    """Apply ``ops`` through a JupyterLab-like client of ``path`` (first written with
    ``notebook``, unless None); what came of it."""
    log_from = log_size(target.process)
    if notebook is not None:
        target.write(path, notebook)
    before = 0
    async with connect(target.client, path) as actor, connect(target.client, path) as observer:
        if target.ours:
            before = (await target.rest(path))[1]
        with AssignedIds(actor) as assigned:
            await apply_all(ops, actor, observer, assigned)
        seen = await finish(target, path, actor, observer)
    outcome = Outcome(
        file=await target.read(path),
        errors=problems(target.process.log()[log_from:]),
        assigned=assigned.assigned,
        misplaced=assigned.misplaced,
        **seen,
    )
    if target.ours:
        outcome.records, after = await target.rest(path)
        outcome.versions = (before, after)
    return outcome


async def run_on_both(
    targets: Sequence[Target],
    notebook: dict[str, Any] | None,
    ops: Sequence[Op],
    path: str | None = None,
) -> tuple[Outcome, ...]:
    """``run_sequence`` on every target at once (on a new path unless ``path`` is given)."""
    path = path or new_path()
    return tuple(await asyncio.gather(*(run_sequence(t, path, notebook, ops) for t in targets)))


async def joiner_view(target: Target, path: str) -> dict[str, Any]:
    """What a client joining ``path`` now sees."""
    async with connect(target.client, path) as joiner:
        return joiner.view()


def restart(target: Target, loop: LoopThread) -> None:
    """Stop the server (SIGTERM: a clean shutdown) and start it again on its port, with a new
    HTTP client (the old one's connections went with the old server)."""
    loop.run(target.client.aclose())
    target.process.stop()
    target.process.start()
    assert target.process.process is not None
    owned_by_session(target.process.process.pid)  # the session's server, not the test's
    target.client = Server(target.process.url, target.process.token)
