"""``FrontendRuns``: JupyterLab's run requests, queued in notebook order.

JupyterLab's run-all (and run-selected) sends one ``POST /api/kernels/{id}/execute`` per cell
at once, over up to six HTTP connections: they arrive in any order and, on a loaded machine,
tens of milliseconds apart. Two rules keep such a run in notebook order:

* a user's requests for a notebook are gathered until none has come for ``GATHER_WINDOW``
  (and at most ``GATHER_LIMIT`` after the first), then queued sorted by position;
* a request that comes later than its gathering is placed before the cells of that user's
  earlier requests (queued in the last ``ORDER_WINDOW``) that come after it in the notebook
  and have not started yet. A started cell cannot be taken back: the gathering is what keeps
  the first cell from starting before the requests of the cells above it are in.

A person who runs a cell low in the notebook and then, within ``ORDER_WINDOW`` and while it
still waits in the queue, one above it, gets them in notebook order too; the requests carry
nothing that tells the two cases apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..format.ipynb import cell_order_key
from ..origin import Origin

if TYPE_CHECKING:
    from ..documents.notebook import NotebookDocument
    from .open_notebook import NotebookFactory
    from .runner import NotebookRunner

#: a gathering closes when no request has come for this long (seconds)
GATHER_WINDOW = 0.015
#: and at the latest this long after its first request
GATHER_LIMIT = 0.25
#: how long a user's queued cells let a later request of the same user go before them
ORDER_WINDOW = 2.0


@dataclass
class _Gathering:
    """One user's requests for one notebook, not queued yet."""

    origin: Origin
    kernel_id: str | None
    first: float
    timer: asyncio.TimerHandle
    cell_ids: list[str] = field(default_factory=list)


class FrontendRuns:
    """Gathers JupyterLab's run requests and queues them in notebook order (module
    docstring)."""

    def __init__(
        self, notebooks: NotebookFactory, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.notebooks = notebooks
        self._clock = clock
        self._gatherings: dict[tuple[str, str | None], _Gathering] = {}
        #: per notebook and user: the cells queued from requests, and when
        self._queued: dict[tuple[str, str | None], dict[str, float]] = {}

    def request(
        self, document: NotebookDocument, cell_id: str, kernel_id: str, origin: Origin
    ) -> None:
        """Gather a request to run ``cell_id`` (a cell of ``document``) for ``origin``."""
        key = (document.file_id, origin.user)
        loop = asyncio.get_running_loop()
        now = self._clock()
        gathering = self._gatherings.get(key)
        if gathering is None:
            timer = loop.call_later(GATHER_WINDOW, self._queue, document, key)
            gathering = self._gatherings[key] = _Gathering(origin, kernel_id, now, timer)
        else:
            gathering.timer.cancel()
            delay = min(GATHER_WINDOW, max(0.0, gathering.first + GATHER_LIMIT - now))
            gathering.timer = loop.call_later(delay, self._queue, document, key)
        gathering.cell_ids.append(cell_id)

    def _queue(self, document: NotebookDocument, key: tuple[str, str | None]) -> None:
        gathering = self._gatherings.pop(key)
        notebook = self.notebooks.notebooks.get(document.file_id)
        if notebook is None or notebook.document is not document:
            self._queued.pop(key, None)
            return  # closed meanwhile: nothing runs in a closed notebook
        runner = notebook.runner
        now = self._clock()
        self._forget_before(now - ORDER_WINDOW)
        queued = self._queued.get(key, {})
        position = {c: self._position(runner, c) for c in [*gathering.cell_ids, *queued]}
        cells = sorted(dict.fromkeys(gathering.cell_ids), key=position.__getitem__)
        waiting = [c for c in runner.queue if c in queued]
        groups: list[tuple[str | None, list[str]]] = []
        for cell_id in cells:
            before = next((c for c in waiting if position[c] > position[cell_id]), None)
            if groups and groups[-1][0] == before:
                groups[-1][1].append(cell_id)
            else:
                groups.append((before, [cell_id]))
        for before, group in groups:
            for cell_id in runner.run(
                group, kernel_id=gathering.kernel_id, origin=gathering.origin, before=before
            ):
                queued[cell_id] = now
        self._queued[key] = queued

    def _forget_before(self, cutoff: float) -> None:
        """Drop the queued cells older than ``cutoff``, of every notebook (a closed one's
        too)."""
        for key in list(self._queued):
            recent = {c: t for c, t in self._queued[key].items() if t >= cutoff}
            if recent:
                self._queued[key] = recent
            else:
                del self._queued[key]

    @staticmethod
    def _position(runner: NotebookRunner, cell_id: str) -> tuple[float, str]:
        return cell_order_key(runner.db.peek(("cell", cell_id)) or {"id": cell_id})
