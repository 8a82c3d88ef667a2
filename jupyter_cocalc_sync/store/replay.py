"""Replaying logged updates into one state, in a worker process.

pycrdt holds the GIL while it applies an update, so replaying a long history in a thread still
stalls the event loop for as long as the replay takes. Snapshots, squashes and reads of old
versions are bytes in, bytes out, so they run in a separate process; the event loop and the
log writer only wait for the result. Big bytes go to and from that process through files
(``spill.py``): pickled whole, a 20 MB update would hold the GIL for tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from pycrdt import Doc

from .bases import BaseInput, base_doc, relative_state
from .spill import call_spilled, has_big, has_spilled, spill_big, spilled_files, unspill_all

log = logging.getLogger(__name__)

T = TypeVar("T")


def _start(base: BaseInput | None) -> Doc[Any]:
    """A new document to replay into: the base of a based document (``bases.py``)."""
    return Doc() if base is None else base_doc(base)


def merged_state(
    snapshot: bytes | None, updates: Sequence[bytes], base: BaseInput | None = None
) -> bytes:
    """One garbage-collected update equal to ``snapshot`` followed by ``updates`` (after the
    base, and without it, for a based document)."""
    doc = _start(base)
    if snapshot is not None:
        doc.apply_update(snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc.get_update() if base is None else relative_state(doc, base)


def squashed(
    snapshot: bytes | None,
    before: Sequence[bytes],
    squash: Sequence[bytes],
    base: BaseInput | None = None,
) -> bytes:
    """One update that takes the state after ``before`` to the state after ``squash``.

    The state is garbage-collected, so text written and deleted again inside the squashed
    range (a progress bar redrawn a thousand times) is kept only as the length of what was
    deleted, not as its content.
    """
    doc = _start(base)
    if snapshot is not None:
        doc.apply_update(snapshot)
    for update in before:
        doc.apply_update(update)
    state_vector = doc.get_state()
    for update in squash:
        doc.apply_update(update)
    return doc.get_update(state_vector)


def _exit_with_parent(parent: int) -> None:
    """Runs in the worker: it leaves when the server does, even one killed with SIGKILL
    (an executor's shutdown message never reaches a worker whose parent is gone)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class ReplayPool:
    """One worker process for replays (a thread if processes cannot be started here).

    Starting the process costs a second or two of CPU (it imports this package), so the
    change logs of one server process share one pool (``shared()``), started on first use.
    It is started from a thread: spawning it (and multiprocessing's resource tracker) holds
    the calling thread for tens of milliseconds, which on the event loop is a stall.
    """

    _shared: ReplayPool | None = None

    def __init__(self, spill_dir: str | None = None) -> None:
        self._executor: Executor | None = None
        #: one start at a time (the first replays of a server may come together)
        self._starting = threading.Lock()
        #: where big bytes go to and from the worker process (``spill.py``); each file is
        #: removed by its reader once read
        self.spill_dir = spill_dir or tempfile.gettempdir()
        #: the spill folder while the worker is a process (a thread needs no files)
        self._folder: str | None = None

    @classmethod
    def shared(cls) -> ReplayPool:
        """The pool of this process, shut down when the process exits."""
        if cls._shared is None:
            cls._shared = cls()
            atexit.register(cls._shared.close)
        return cls._shared

    def _started(self) -> Executor:
        """The executor, its worker process started (runs in a thread: class docstring)."""
        with self._starting:
            if self._executor is not None:
                return self._executor
            executor: Executor
            try:
                executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
                # a process pool spawns its worker on the first submit
                executor.submit(os.getpid)
                self._folder = self.spill_dir
            except (OSError, ValueError) as e:  # no process support (sandboxes)
                log.warning("replays run in a thread (no worker process: %s)", e)
                executor = ThreadPoolExecutor(max_workers=1)
            self._executor = executor
            return executor

    async def _pool(self) -> Executor:
        if self._executor is not None:
            return self._executor
        return await asyncio.to_thread(self._started)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the worker (``fn`` must be a module-level function)."""
        executor = await self._pool()
        if self._folder is None or not has_big(args):  # (no folder: a thread, nothing pickled)
            return await self._call(executor, fn, *args)
        folder = self._folder
        spilled = await asyncio.to_thread(spill_big, args, folder)
        try:
            result = await self._call(executor, call_spilled, fn, folder, spilled)
        finally:
            await asyncio.to_thread(_remove, spilled_files(spilled))
        if has_spilled(result):
            result = await asyncio.to_thread(unspill_all, result, remove=True)
        return result  # type: ignore[no-any-return]  # what fn returns, read back

    async def _call(self, executor: Executor, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, fn, *args)
        except BrokenProcessPool:
            log.warning("the replay process died; starting another")
            if self._executor is executor:
                self._executor = None
            return await loop.run_in_executor(await self._pool(), fn, *args)

    def worker_pids(self) -> list[int]:
        """The pids of the worker processes running now (none before the first replay)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return list(processes)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._folder = None


def _remove(paths: list[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)  # (gone if the pool was closed meanwhile)
