"""``NotebookRunner``: the server runs a notebook's cells and writes their outputs.

A client asks for a run by setting a cell's ``state`` to ``"start"`` (or through the REST API,
the Python client, or JupyterLab's server-side executor). The runner moves the cell on —
``run`` (queued; skipped by a cell that starts at once: its clearing goes with its start,
``docs/design.md``), ``busy`` (executing, ``start`` set), ``idle`` (done, ``end`` set) — on the
notebook's session kernel, and writes the outputs into the table as they come (through an
``OutputHandler``, at most every ``flush_interval`` seconds during a flood; each run is a
``CellRun``, ``cell_run.py``). A cell that starts at once for a client's change has its request
sent as soon as that change is durable, before the other clients are sent it. Nothing depends
on a browser: outputs keep arriving, and are saved, when every client is gone.

Queue rules: cells run in request order; after an error the rest of the queue is dropped
(``halt_on_error``); interrupting stops the running cell and drops the queue; a queued cell that
is deleted is dropped, a running one is interrupted. A kernel that dies mid-cell ends that cell
with the error, records ``kernel_error`` and ``backend_state``, and the next run gets a kernel
again. ``input()``/``getpass()`` show an ``input_request`` output that any client can answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Protocol

from jupyter_client.kernelspec import NoSuchKernel
from tornado.web import HTTPError

from ..errors import KernelError
from ..errors_seen import count_error
from ..format.ipynb import cell_order_key, ordered_outputs
from ..kernels.kernel import CodeExecutionEmitter, JupyterKernel
from ..origin import RUNNER, Origin
from ..outputs.handler import DisplayIndex, OutputHandler, OutputLimits, is_marker
from .cell_run import CellRun
from .cell_writes import SERVER_STOPPED, CellWrites
from .notebook_kernel import NotebookKernel
from .run_versions import RunBroadcast, RunVersions
from .table_requests import TableRunRequests

if TYPE_CHECKING:
    from ..documents.notebook import NotebookDocument
    from ..outputs.blobs import BlobStore
    from ..outputs.overflow import MoreOutputStore
    from ..store.history import HistorySquasher
    from ..widgets.session import NotebookWidgets
    from .activity_clock import WorkTracker
    from .sessions import SessionKernels

log = logging.getLogger(__name__)

#: how long closing waits for the running cell to write what it printed before it was stopped
WORKER_STOP_TIMEOUT = 10.0

#: why a notebook may get no kernel: it cannot start or died (KernelError), jupyter_server's
#: session manager refused (HTTPError), its kernelspec is gone (NoSuchKernel)
NO_KERNEL = (KernelError, HTTPError, NoSuchKernel)


class RunProgressListener(Protocol):
    """Told how a batch of runs goes: cells ``done`` since the runner last became busy,
    cells ``pending`` (queued or running), and whether the runner is still at it."""

    def run_progress(self, done: int, pending: int, running: bool) -> None: ...


class NotebookRunner:
    """Runs one notebook's cells (module docstring)."""

    def __init__(
        self,
        document: NotebookDocument,
        kernels: SessionKernels,
        *,
        limits: OutputLimits,
        blobs: BlobStore | None = None,
        overflow: MoreOutputStore | None = None,
        history: HistorySquasher | None = None,
        flush_interval: float = 0.05,
        hold: Callable[[NotebookDocument], None] | None = None,
        release: Callable[[NotebookDocument], None] | None = None,
        activity: WorkTracker | None = None,
        widgets: NotebookWidgets | None = None,
        broadcast: RunBroadcast | None = None,
    ) -> None:
        self.document = document
        self.db = document.db
        self.kernels = kernels
        self.limits = limits
        self.blobs = blobs
        self.overflow = overflow
        self.history = history
        self.flush_interval = flush_interval
        self.versions = RunVersions(document, history, broadcast)
        self.writes = CellWrites(self.db, self.versions, flush_interval, self._current_handler)
        #: the notebook's widget table (widgets/), following the runner's kernel
        self.widgets = widgets
        self.notebook_kernel = NotebookKernel(document, kernels, self.writes, widgets)
        self.halt_on_error = True
        self.queue: deque[str] = deque()
        self.current: str | None = None
        #: the origin of the runner's writes for each queued cell (for who asked for it)
        self._requested_by: dict[str, Origin] = {}
        self.displays = DisplayIndex(write_other=self.writes.write_display)
        self._hold, self._release = hold, release
        self.activity = activity
        #: the run of the cell running now (None between runs and while finding the kernel)
        self._run: CellRun | None = None
        self._worker: asyncio.Task[None] | None = None
        #: cells finished since the runner last became busy (run progress)
        self.done_in_batch = 0
        self._progress: list[RunProgressListener] = []
        self._interrupt_requested = False
        #: the cell ``run`` cleared for the worker it started (its first cell)
        self._cleared: str | None = None
        #: that cell, when its request may be sent before the worker's first step: once the
        #: peer's update that asked for it is durable (``_send_early``)
        self._early_cell: str | None = None
        #: the run ``_send_early`` began (its request sent: its emitter), for the worker
        self._early: tuple[CellRun, str, CodeExecutionEmitter] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._requests = TableRunRequests(self.db, self, self.writes)
        self._unsubscribe_peer_durable = (
            broadcast.on_peer_durable(self._send_early) if broadcast is not None else None
        )
        self._requests.reset_stale_states()

    # -- requests ---------------------------------------------------------------------------

    def run_of(self, cell_id: str) -> CellRun | None:
        """The run of ``cell_id`` if it is the cell running now."""
        run = self._run
        return run if run is not None and run.cell_id == cell_id else None

    def cell_deleted(self, cell_id: str) -> None:
        """A cell was deleted: dropped from the queue, interrupted if it runs."""
        if cell_id in self.queue:
            self.queue.remove(cell_id)
            self._requested_by.pop(cell_id, None)
            self.writes.forget_clear(cell_id)
        if cell_id == self.current:
            asyncio.get_running_loop().create_task(self.interrupt(clear_queue=False))

    def run(
        self,
        cell_ids: Iterable[str],
        *,
        origin: Origin,
        kernel_id: str | None = None,
        before: str | None = None,
    ) -> list[str]:
        """Queue cells (in the given order) for ``origin``, at the end of the queue or
        before the queued cell ``before``; returns the ids that were queued."""
        queued = []
        running_for = origin.running_for()
        with self.writes.batch(running_for):
            for cell_id in cell_ids:
                record = self.db.peek(("cell", cell_id))
                if record is None:
                    continue
                if record.get("cell_type", "code") != "code":
                    if record.get("state") not in (None, "idle"):
                        self.db.set({"type": "cell", "id": cell_id, "state": "idle"}, running_for)
                    continue
                if cell_id == self.current or cell_id in self.queue:
                    continue
                if before is not None and before in self.queue:
                    self.queue.insert(self.queue.index(before), cell_id)
                else:
                    self.queue.append(cell_id)
                self._requested_by[cell_id] = running_for
                queued.append(cell_id)
            # (the first, if it starts now, is cleared and shown running with its start)
            cleared = queued[0] if self._starts_at_once(queued, kernel_id) else None
            for cell_id in queued:
                if cell_id == cleared:
                    self.writes.clear_for_run(cell_id, running_for, state="run")
                    self._cleared = cell_id
                else:
                    self.db.set({"type": "cell", "id": cell_id, "state": "run"}, running_for)
        if queued:
            self.writes.commit_written(running_for)
            if kernel_id:
                self.notebook_kernel.prefer = kernel_id
            self._start_worker()
            if cleared is not None:
                self._early_cell = cleared
            self._report_progress()
        return queued

    def _starts_at_once(self, queued: list[str], kernel_id: str | None) -> bool:
        """Whether the first of the cells just ``queued`` starts as soon as the worker does
        and may go without its ``run`` state: asked for through the table (its ``start`` is
        what every client shows until its run does: a cell queued over REST has to show
        ``run`` in the version the request answers, or a client waiting for it to be idle
        again would see it idle at once), none before it, the kernel running (nothing to wait
        for), and no overflowed outputs to remove first."""
        first = self.db.peek(("cell", queued[0])) if queued else None
        if first is None or first.get("state") != "start":
            return False
        kernel = self.kernel
        if (
            not queued
            or self.queue[0] != queued[0]
            or (self._worker is not None and not self._worker.done())
            or kernel is None
            or kernel.state != "running"
            or (kernel_id is not None and kernel_id != kernel.kernel_id)
        ):
            return False
        return self.overflow is None or not any(is_marker(o) for o in ordered_outputs(first))

    def run_all(self, *, origin: Origin) -> list[str]:
        cells = sorted(
            (r for r in self.db.get({"type": "cell"}) if r.get("cell_type", "code") == "code"),
            key=cell_order_key,
        )
        return self.run([r["id"] for r in cells], origin=origin)

    def _start_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self.done_in_batch = 0
            self._idle.clear()
            if self._hold is not None:
                self._hold(self.document)
            self._worker = asyncio.get_running_loop().create_task(self._work())
            activity = self.activity
            if activity is not None:
                # (a callback: a worker cancelled before its first step runs no finally)
                activity.work_started()
                self._worker.add_done_callback(lambda _task: activity.work_ended())

    def on_progress(self, listener: RunProgressListener) -> Callable[[], None]:
        """Tell ``listener`` how each batch of runs goes (until the returned call)."""
        self._progress.append(listener)
        return lambda: self._progress.remove(listener) if listener in self._progress else None

    def _report_progress(self, *, running: bool = True) -> None:
        pending = len(self.queue) + (self.current is not None)
        for listener in list(self._progress):
            listener.run_progress(self.done_in_batch, pending, running)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.queue)

    def has_pending(self, cell_id: str) -> bool:
        """Whether the cell is queued or running here (one that started at once may still
        show its previous state: its clearing goes with its start)."""
        return cell_id == self.current or cell_id in self.queue

    # -- the worker -------------------------------------------------------------------------

    def _take_next(self) -> str:
        """The next queued cell, now the current one."""
        cell_id = self.queue.popleft()
        self.current = cell_id
        self.writes.origin = self._requested_by.pop(cell_id, RUNNER)
        return cell_id

    def _send_early(self) -> None:
        """A peer's update was just made durable, and is not sent to any client yet: the
        request of the cell it asked for, which starts at once, goes to the kernel now,
        before the worker's first step (a loop turn later, after the other clients were
        sent the update and their processes woke to take the CPU the kernel needs). Not
        before the update is durable: the kernel never runs a request that a crash could
        take back (``docs/design.md``)."""
        cell_id, self._early_cell = self._early_cell, None
        if cell_id is None or not self.queue or self.queue[0] != cell_id:
            return
        kernel = self.notebook_kernel.running()
        record = self.db.peek(("cell", cell_id))
        if kernel is None or record is None:
            return  # (the worker finds out why)
        code = record.get("input", "")
        try:
            emitter = kernel.execute_code(code)
        except KernelError:
            return  # (the worker tries again, and the cell shows the error)
        self.notebook_kernel.prefer = None
        self._take_next()
        self._cleared = None
        self._interrupt_requested = False
        self._early = (self._begin(cell_id, kernel, cleared=True, overflowed=False), code, emitter)

    async def _work(self) -> None:
        self._early_cell = None  # (the worker sends its requests itself)
        try:
            while self.queue or self._early is not None:
                cell_id = self._early[0].cell_id if self._early else self._take_next()
                try:
                    ok = await self._run_cell(cell_id)
                except Exception as e:  # a bug of ours: the cell shows it, the queue goes on
                    count_error("runner.cell", e, f"running cell {cell_id}", logger=log)
                    ok = False
                    self.writes.finish_with_error(cell_id, type(e).__name__, str(e))
                finally:
                    self.current = None
                    self.done_in_batch += 1
                if not ok and self.halt_on_error:
                    self._drop_queue()
                self._report_progress()
        finally:
            self._cleared = None
            self.writes.kernel_idle()
            self.writes.commit()
            self.writes.origin = RUNNER
            self._idle.set()
            self._report_progress(running=False)
            if self._release is not None:
                self._release(self.document)

    async def session_kernel(self) -> JupyterKernel:
        """The notebook's kernel, started if needed (for completion, introspection, info)."""
        return await self.notebook_kernel.session_kernel()

    @property
    def kernel(self) -> JupyterKernel | None:
        """The kernel the last run used (None: none yet)."""
        return self.notebook_kernel.kernel

    async def _run_cell(self, cell_id: str) -> bool:
        early, self._early = self._early, None
        if early is not None:  # (its request is sent: ``_send_early``)
            run, code, emitter = early
            return await self._execute(run, code, emitter)
        # cleared when it was queued (``run``) if it is the worker's first
        cleared, self._cleared = self._cleared == cell_id, None
        record = self.db.peek(("cell", cell_id))
        if record is None:
            return True
        code = record.get("input", "")
        self._interrupt_requested = False  # before the wait: an interrupt may come meanwhile
        try:
            kernel = await self.notebook_kernel.get()
        except Exception as e:
            if not isinstance(e, NO_KERNEL):  # a bug of ours: the cell shows it all the same
                what = f"finding the kernel of {self.document.path}"
                count_error("runner.kernel", e, what, logger=log)
            message = str(e) or type(e).__name__
            self.writes.set_settings(backend_state="failed", kernel_error=message)
            self.writes.finish_with_error(cell_id, "KernelError", message)
            return False
        overflowed = any(is_marker(o) for o in ordered_outputs(record))
        if overflowed and self.overflow is not None:
            # (a cell that never overflowed has nothing there: no disk round trip per run)
            await self.overflow.clear(self.document.file_id, cell_id)
        run = self._begin(cell_id, kernel, cleared=cleared, overflowed=overflowed)
        return await self._execute(run, code)

    def _begin(
        self, cell_id: str, kernel: JupyterKernel, *, cleared: bool, overflowed: bool
    ) -> CellRun:
        """The run of ``cell_id`` on ``kernel``, now the current one (``cleared``: its
        clearing for the run is written or pending already; ``overflowed``: its outputs
        had overflowed, and their store is emptied)."""
        self.displays.forget_cell(cell_id)
        handler = OutputHandler(
            cell_id,
            limits=self._limits(),
            blobs=self.blobs,
            overflow=partial(self.overflow.writer, self.document.file_id, cell_id)
            if self.overflow is not None
            else None,
            displays=self.displays,
            doc_id=self.document.file_id,
        )
        run = self._run = CellRun(
            kernel,
            handler,
            self.writes,
            interrupt_requested=lambda: self._interrupt_requested,
            last_of_batch=lambda: not self.queue,
        )
        self.versions.start_run()
        if not cleared:
            self.writes.clear_for_run(cell_id)
            if overflowed:  # (its markers point to outputs that are gone)
                self.writes.commit()
        return run

    async def _execute(
        self, run: CellRun, code: str, emitter: CodeExecutionEmitter | None = None
    ) -> bool:
        """Follow ``run`` to its end (``emitter``: its request, when sent already)."""
        try:
            return await run.execute(code, emitter)
        finally:
            self._run = None
            self.versions.end_run()

    def _current_handler(self) -> OutputHandler | None:
        """The output handler of the cell running now."""
        run = self._run
        return run.handler if run is not None else None

    def _limits(self) -> OutputLimits:
        length, messages = self.writes.settings("max_output_length", "max_output_messages")
        return OutputLimits(
            max_length=int(length or self.limits.max_length),
            max_messages=int(messages or self.limits.max_messages),
        )

    def answer_input(self, cell_id: str, value: str) -> bool:
        """Answer the pending ``input()`` of ``cell_id``; returns whether one was pending."""
        run = self._run
        return run is not None and run.cell_id == cell_id and run.answer_input(value)

    # -- kernel control ---------------------------------------------------------------------

    def _drop_queue(self) -> None:
        dropped, self.queue = list(self.queue), deque()
        self._requested_by.clear()
        if dropped:
            with self.writes.batch() as origin:
                for cell_id in dropped:
                    self.writes.forget_clear(cell_id)  # (its run never began)
                    if self.db.peek(("cell", cell_id)) is not None:
                        self.db.set({"type": "cell", "id": cell_id, "state": "idle"}, origin)
            self.writes.commit()
            self._report_progress()

    def unqueue(self, cell_id: str) -> None:
        """Take a queued (not yet running) cell off the queue; it is idle again."""
        if cell_id not in self.queue:
            return
        self.queue.remove(cell_id)
        self._requested_by.pop(cell_id, None)
        self.writes.forget_clear(cell_id)  # (its run never began)
        with self.writes.batch() as origin:
            self.db.set({"type": "cell", "id": cell_id, "state": "idle"}, origin)
        self.writes.commit()
        self._report_progress()

    async def interrupt(self, *, clear_queue: bool = True) -> None:
        """Interrupt the running cell (it ends with the kernel's KeyboardInterrupt)."""
        if clear_queue:
            self._drop_queue()
        if self.current is not None:
            self._interrupt_requested = True  # also honoured once a starting kernel is ready
            if self.kernel is not None:
                await self.kernel.signal("SIGINT")

    async def restart(self, *, run_all: bool = False, clear: bool = False) -> None:
        """Restart the kernel (outputs cleared if ``clear``; all cells run if ``run_all``)."""
        self._drop_queue()
        kernel_id = self.kernel.kernel_id if self.kernel is not None else None
        if kernel_id is None:
            session = await self.kernels.session_for(self.document.path)
            kernel_id = session["kernel"]["id"] if session else None
        if kernel_id is not None and kernel_id in self.kernels.kernel_manager:
            self.writes.set_settings(backend_state="starting")
            self.writes.commit()
            await self.kernels.kernel_manager.restart_kernel(kernel_id)
            self.writes.set_settings(backend_state="running", kernel_error=None)
        if self.current is not None:
            await self._idle.wait()
        self.displays = DisplayIndex(write_other=self.writes.write_display)
        if clear:
            with self.writes.batch() as origin:
                for record in self.db.get({"type": "cell"}):
                    if record.get("output") or record.get("exec_count") is not None:
                        self.db.set(
                            {
                                "type": "cell",
                                "id": record["id"],
                                "output": None,
                                "exec_count": None,
                            },
                            origin,
                        )
        self.writes.commit()
        if run_all:
            self.run_all(origin=RUNNER)

    async def change_kernel(self, name: str) -> None:
        """Switch the notebook to the kernelspec ``name`` (a new kernel of its session)."""
        spec = self.kernels.kernelspec(name)  # raises for an unknown name
        self._drop_queue()
        if self.current is not None:
            await self.interrupt()
            await self._idle.wait()
        self.writes.set_settings(kernel=name, metadata={"kernelspec": spec})
        self.writes.commit()
        if await self.kernels.session_for(self.document.path) is not None:
            await self.kernels.change_kernel(self.document.path, name)
        self.notebook_kernel.kernel = None

    async def close(self) -> None:
        """Stop running (the server stops, or the notebook closes): a cell that was running
        ends with an error saying its run was cut off."""
        self._requests.close()
        if self._unsubscribe_peer_durable is not None:
            self._unsubscribe_peer_durable()
        self.writes.close()
        self._drop_queue()
        cut_off = self.current
        worker = self._worker
        if worker is not None and not worker.done():
            worker.cancel()
            # its cell's outputs so far are written as it ends; the error comes after them
            await asyncio.wait({worker}, timeout=WORKER_STOP_TIMEOUT)
        if cut_off is not None:
            self.writes.cut_off(cut_off, SERVER_STOPPED)
            self.writes.commit()
        await self.versions.close()
