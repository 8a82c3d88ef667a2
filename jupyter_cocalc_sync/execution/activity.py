"""``NotebookActivity``: kernel usage and run progress of one notebook, live for every client.

Neither is notebook history, so neither goes through the table or the change log: both are
the server's awareness state in the notebook's rooms (the SyncDB room and JupyterLab's), which
every client receives as it receives collaborators' cursors, and ``GET …/kernel_usage`` reads
them. The state carries a ``user`` too, and the server shows the kernel in JupyterLab's global
awareness room as well, so its collaborators panel lists it with what it is doing
("nb.ipynb: Kernel · busy · 3/10 cells · 212 MB · 98% CPU").

Kernel usage is sampled every ``busy_interval`` seconds while the notebook runs cells (or its
kernel is busy with a JupyterLab user's code), every ``idle_interval`` seconds otherwise, and
once at the start and the end of every batch of runs (so the memory a run freed shows at
once), but never more often than every ``busy_interval / 4`` (runs of a few milliseconds back
to back would otherwise read the kernel's process tree twice each). Run progress: cells done
and pending since the runner last became busy; it stays after the batch (``running: false``)
until the next one. Changes within ``PUBLISH_DELAY`` reach clients as one awareness update. A
batch shows as running once it has run ``RUNNING_SHOWN_AFTER`` seconds: a quick run (most runs,
``1+1``) shows only its end, not a state over before anyone could read it, sent to every client
of the notebook for each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import psutil

from ..errors_seen import count_error
from ..kernels.usage import KernelUsage, ProcessTreeSampler, local_pid

if TYPE_CHECKING:
    from jupyter_client.manager import KernelManager

    from ..documents.notebook import NotebookDocument
    from .runner import NotebookRunner
    from .sessions import SessionKernels

log = logging.getLogger(__name__)

#: how the kernel appears among a notebook's collaborators in JupyterLab
KERNEL_USER = {
    "username": "jupyter-cocalc-sync-kernel",
    "name": "Kernel",
    "initials": "K",
    "color": "#607d8b",
    "avatar_url": None,
}


class CollaboratorsPanel(Protocol):
    """Where JupyterLab lists who works on what: its global awareness room
    (rooms/registry.py)."""

    def show_in_global_awareness(self, client_id: int, state: dict[str, Any] | None) -> None: ...


#: seconds within which changes of the state are sent to clients as one
PUBLISH_DELAY = 0.05
#: seconds a batch of runs has run before its progress shows it running
RUNNING_SHOWN_AFTER = 0.25
#: seconds after which a state is sent again even if it did not change (clients drop a state
#: not renewed within 30 s)
RENEW_INTERVAL = 10.0


@dataclass(frozen=True)
class UsageSettings:
    #: seconds between samples while cells run
    busy_interval: float = 2.0
    #: seconds between samples otherwise (at most 15: clients drop an awareness state that
    #: is not renewed within 30 s)
    idle_interval: float = 10.0


class NotebookActivity:
    """Kernel usage and run progress of one notebook (module docstring): it follows the
    runner's progress, and shows both in the notebook's rooms (``server_state``) and in
    JupyterLab's collaborators panel."""

    def __init__(
        self,
        document: NotebookDocument,
        runner: NotebookRunner,
        kernels: SessionKernels,
        settings: UsageSettings | None = None,
        panel: CollaboratorsPanel | None = None,
        *,
        server_state: Callable[[dict[str, Any] | None], None],
    ) -> None:
        self.document = document
        self.panel = panel
        self.runner = runner
        self._server_state = server_state
        self._unsubscribe = runner.on_progress(self)
        self.kernels = kernels
        self.settings = settings or UsageSettings()
        self.usage: KernelUsage | None = None
        self.progress: dict[str, Any] | None = None
        self._running = False
        #: time.monotonic() when the runner last became busy
        self._batch_started = -float("inf")
        self._kernel_busy = False
        self._sampler: ProcessTreeSampler | None = None
        self._wake = asyncio.Event()
        self._last_sample = -float("inf")  # time.monotonic() of the latest sample
        self._publishing: asyncio.TimerHandle | None = None
        #: the state last sent, and when (time.monotonic())
        self._published: tuple[dict[str, Any] | None, float] | None = None
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._sample_forever()
        )

    # -- what clients read --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """``{"kernel_usage": {"memory", "cpu", "time"} | None, "run_progress": {"done",
        "total", "running"} | None}``."""
        return {
            "kernel_usage": self.usage.to_json() if self.usage is not None else None,
            "run_progress": self.progress,
        }

    def _publish(self, delay: float = PUBLISH_DELAY) -> None:
        """Send the state to clients soon, with whatever else changes meanwhile."""
        if self._publishing is None:
            self._publishing = asyncio.get_running_loop().call_later(delay, self._publish_now)

    def _publish_now(self) -> None:
        self._publishing = None
        young = self._batch_started + RUNNING_SHOWN_AFTER - time.monotonic()
        if self._running and young > 0:
            self._publish(young)  # (a batch that ends before shows its end only)
            return
        state: dict[str, Any] | None = None
        summary: str | None = None
        if self.usage is not None or self.progress is not None:
            state = self.to_json()
            summary = self._summary()
            state["user"] = {**KERNEL_USER, "display_name": summary}
        now = time.monotonic()
        if self._published is not None:
            # (runs back to back end as each began: "1/1 cells done", the same again)
            published, when = self._published
            if published == state and now - when < RENEW_INTERVAL:
                return
        self._published = (state, now)
        self._server_state(state)
        self._show_in_panel(summary)

    def _show_in_panel(self, summary: str | None) -> None:
        """One entry per notebook kernel among JupyterLab's collaborators: its name says what
        the kernel does, and it lists the notebook (a click opens it)."""
        if self.panel is None:
            return
        entry = None
        if summary is not None:
            path = self.document.path
            user = {
                **KERNEL_USER,
                "username": f"{KERNEL_USER['username']}:{self.document.file_id}",
                "display_name": f"{posixpath.basename(path)}: {summary}",
            }
            entry = {"user": user, "current": f"notebook:{path}", "documents": [path]}
        self.panel.show_in_global_awareness(self.document.db.doc.client_id, entry)

    def _summary(self) -> str:
        parts = ["Kernel", "busy" if self._running or self._kernel_busy else "idle"]
        progress = self.progress
        if progress is not None and progress["running"]:
            parts.append(f"{progress['done']}/{progress['total']} cells")
        if self.usage is not None:
            parts.append(f"{self.usage.memory / 2**20:.0f} MB")
            parts.append(f"{self.usage.cpu:.0f}% CPU")
        return " · ".join(parts)

    # -- run progress (from the runner) -------------------------------------------------------

    def run_progress(self, done: int, pending: int, running: bool) -> None:
        if running != self._running:
            self._running = running
            if running:
                self._batch_started = time.monotonic()
            self._wake.set()  # a sample at the start and at the end of every batch
        self.progress = {"done": done, "total": done + pending, "running": running}
        self._publish()

    # -- kernel usage -------------------------------------------------------------------------

    async def _sample_forever(self) -> None:
        while True:
            try:
                await self._sample()
            except psutil.Error as e:  # the kernel's process went away while it was read
                log.debug("sampling the kernel of %s: %s", self.document.path, e)
            except Exception as e:  # a bug of ours: sampling goes on
                what = f"sampling the kernel usage of {self.document.path}"
                count_error("activity.sample", e, what, logger=log)
            busy = self._running or self._kernel_busy
            interval = self.settings.busy_interval if busy else self.settings.idle_interval
            # (not ``asyncio.wait_for``: on Python 3.11 it returns the wake-up and drops a
            # cancellation that comes in the same loop turn, and this loop went on forever)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            # a batch that starts or ends right after a sample is sampled a little later
            too_soon = self._last_sample + self.settings.busy_interval / 4 - time.monotonic()
            if too_soon > 0:
                await asyncio.sleep(too_soon)

    async def _sample(self) -> None:
        self._last_sample = time.monotonic()
        km = await self._kernel_manager()
        # busy also when a JupyterLab user runs code over the kernel websocket (jupyter_server
        # follows the kernel's status messages)
        self._kernel_busy = getattr(km, "execution_state", None) == "busy"
        pid = local_pid(km) if km is not None else None
        if pid is None:
            self._sampler = None
            usage = None
        else:
            if self._sampler is None or self._sampler.pid != pid:
                self._sampler = ProcessTreeSampler(pid)
            usage = await anyio.to_thread.run_sync(self._sampler.sample)
        self.usage = usage
        self._publish()

    async def _kernel_manager(self) -> KernelManager | None:
        """jupyter_server's manager of the notebook's kernel: the runner's, else its session's
        (opened in JupyterLab, nothing run by the server yet); None without one."""
        kernel = self.runner.kernel
        kernel_id = kernel.kernel_id if kernel is not None else None
        if kernel_id is None or kernel_id not in self.kernels.kernel_manager:
            session = await self.kernels.session_for(self.document.path)
            kernel_id = session["kernel"]["id"] if session else None
        if kernel_id is None or kernel_id not in self.kernels.kernel_manager:
            return None
        return self.kernels.kernel_manager.get_kernel(kernel_id)

    async def close(self) -> None:
        self._unsubscribe()
        if self._publishing is not None:
            self._publishing.cancel()
            self._publishing = None
        if self.panel is not None:
            self.panel.show_in_global_awareness(self.document.db.doc.client_id, None)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # (the task's own cancellation is not this close's)
