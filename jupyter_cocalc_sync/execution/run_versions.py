"""``RunVersions``: a cell's run is one version of the history, not one per output flush.

The runner commits through it; the log writes made while a cell runs (the table's and the
YNotebook's) are collected and squashed into one version each once the run ends. Each commit
is written to the log and sent to the clients in the call that made it when the store can
write it there and then (``RunBroadcast.send_now``), as a peer's update is: not two loop turns
later (the log's flush task, then the rooms' callbacks on the write's future).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..errors_seen import count_error
from ..origin import Origin
from ..store.projections import projection_doc
from ..store.sqlite import STORE_ERRORS

if TYPE_CHECKING:
    from ..documents.notebook import NotebookDocument
    from ..store.history import HistorySquasher

log = logging.getLogger(__name__)


class RunBroadcast(Protocol):
    """What the runner needs of the notebook's broadcast (documents/broadcast.py)."""

    def record_projection_writes(self) -> list[asyncio.Future[int]]:
        """The YNotebook's log writes from now on (a run's, squashed with the table's)."""

    def stop_recording(self, recording: list[asyncio.Future[int]]) -> None: ...

    def send_now(self) -> None:
        """Write what the log has queued, and send the clients what is durable, now if the
        store can write it here."""

    def on_peer_durable(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` each time a peer's update was just made durable here, before
        any client is sent it (until the returned call)."""


#: a run that wrote fewer versions than this keeps them: a squash replays the whole notebook
#: (in the replay process), worth it for a long run's hundreds of flushes, not for ``1+1``
SQUASH_MIN_VERSIONS = 16


class RunVersions:
    """Commits of one notebook's runner, and the squashing of each run's versions."""

    def __init__(
        self,
        document: NotebookDocument,
        history: HistorySquasher | None,
        broadcast: RunBroadcast | None = None,
    ) -> None:
        self.document = document
        self.history = history
        self.broadcast = broadcast
        #: the log writes of the cell running now (its versions are squashed when it ends)
        self._run_writes: list[asyncio.Future[int]] | None = None
        #: the YNotebook's log writes during the running cell (squashed with the table's)
        self._projection_writes: list[asyncio.Future[int]] = []
        self._squashes: set[asyncio.Task[None]] = set()

    def commit(self, origin: Origin) -> None:
        """Commit the runner's writes as ``origin``'s (the runner, for who asked)."""
        durable = self.document.table.commit(origin)
        if durable is None:
            return
        if self._run_writes is not None:
            self._run_writes.append(durable)
        if self.broadcast is not None:
            self.broadcast.send_now()

    def start_run(self) -> None:
        self._run_writes = []
        if self.broadcast is not None:
            self._projection_writes = self.broadcast.record_projection_writes()

    def end_run(self) -> None:
        """History keeps one version per run, not one per output flush."""
        writes, self._run_writes = self._run_writes, None
        projection_writes, self._projection_writes = self._projection_writes, []
        if self.broadcast is not None:
            self.broadcast.stop_recording(projection_writes)
        if self.history is None or not writes or len(writes) < SQUASH_MIN_VERSIONS:
            return
        task = asyncio.get_running_loop().create_task(self._squash(writes, projection_writes))
        self._squashes.add(task)
        task.add_done_callback(self._squashes.discard)

    async def _squash(
        self, writes: list[asyncio.Future[int]], projection_writes: list[asyncio.Future[int]]
    ) -> None:
        assert self.history is not None
        file_id = self.document.file_id
        for doc, futures in ((file_id, writes), (projection_doc(file_id), projection_writes)):
            results = await asyncio.gather(*futures, return_exceptions=True)
            versions = [v for v in results if isinstance(v, int)]
            try:
                await self.history.squash_versions(doc, versions)
            except STORE_ERRORS as e:  # the run's versions stay as they are
                log.warning("squashing the history of a run in %s: %s", self.document.path, e)
            except Exception as e:  # a bug of ours: squashing only makes the history shorter
                what = f"squashing the history of a run in {self.document.path}"
                count_error("history.squash", e, what, logger=log)

    async def close(self) -> None:
        for task in list(self._squashes):
            await asyncio.wait([task])  # a squash in flight finishes before the store closes
