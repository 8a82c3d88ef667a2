"""The replay pool keeps big work off the event loop: its worker process is started from a
thread, and big updates travel to and from it in files, a piece at a time."""

from __future__ import annotations

import os
import pickle
import threading
from multiprocessing.context import SpawnProcess
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import pytest
from helpers import server_modules_after
from pycrdt import Doc, Text

from jupyter_cocalc_sync.store.replay import ReplayPool, merged_state
from jupyter_cocalc_sync.store.spill import SPILL_BYTES


async def test_the_worker_process_is_started_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # spawning the process (and multiprocessing's resource tracker) holds the calling thread
    # for tens of milliseconds: a stall if that thread is the event loop's
    started_in: list[int] = []
    real_start = SpawnProcess.start

    def recording_start(process: SpawnProcess) -> None:
        started_in.append(threading.get_ident())
        real_start(process)

    monkeypatch.setattr(SpawnProcess, "start", recording_start)
    pool = ReplayPool()
    try:
        assert await pool.run(merged_state, None, [b"\x00\x00"]) == b"\x00\x00"
        assert started_in, "no worker process was started"
        assert threading.get_ident() not in started_in
    finally:
        pool.close()


@pytest.mark.parametrize("pieces", [1, 40])
async def test_big_updates_go_to_and_from_the_worker_through_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pieces: int
) -> None:
    # pickling, sending and unpickling 20 MB in one piece holds the GIL for tens of ms (a stall
    # of the event loop even from the pool's threads): only small messages go down the pipe,
    # also when the big state is many small updates (an imported notebook's log)
    doc: Doc[Any] = Doc()
    doc["text"] = text = Text()
    updates = []
    for _ in range(pieces):
        before = doc.get_state()
        text += "x" * (3 * SPILL_BYTES // pieces)
        updates.append(doc.get_update(before))
    assert all(len(update) < SPILL_BYTES for update in updates) or pieces == 1
    doc["text"] += "y"
    small = doc.get_update(doc.get_state())
    pickled: list[int] = []
    real_dumps, real_loads = ForkingPickler.dumps, ForkingPickler.loads

    def recording_dumps(obj: object, protocol: int | None = None) -> memoryview:
        data: memoryview = real_dumps(obj, protocol)
        pickled.append(len(data))
        return data

    def recording_loads(data: bytes, /, **kwargs: Any) -> object:
        pickled.append(len(data))
        return real_loads(data, **kwargs)

    pool = ReplayPool(spill_dir=str(tmp_path))
    try:
        await pool.run(merged_state, None, [b"\x00\x00"])
        monkeypatch.setattr(ForkingPickler, "dumps", recording_dumps)
        monkeypatch.setattr(ForkingPickler, "loads", recording_loads)
        state = await pool.run(merged_state, None, [*updates, small])
        monkeypatch.undo()
        assert state == merged_state(None, [*updates, small])
        assert len(state) > 3 * SPILL_BYTES
        assert pickled, "nothing went to the worker"
        assert max(pickled) < SPILL_BYTES
        assert not os.listdir(tmp_path)  # every file removed
    finally:
        pool.close()


def test_what_the_worker_runs_imports_nothing_of_the_server_or_the_ynotebook() -> None:
    # The worker imports the module of each function it is sent. Importing the server,
    # jupyter_ydoc (whose document types load jupyter_events and jsonschema's format checks)
    # or the document costs a fresh worker seconds of CPU: the first merge of a file changed
    # on disk, the first revert and the first snapshot of a server waited for it.
    from jupyter_cocalc_sync.documents import notebook
    from jupyter_cocalc_sync.history import forks
    from jupyter_cocalc_sync.store import changelog, history

    sent = [
        notebook.records_of_state,
        notebook.revert_patch,
        forks.revert_patch,
        changelog.merged_state,
        history.squashed,
    ]
    loaded, server = server_modules_after(
        "import pickle\npickle.load(sys.stdin.buffer)", stdin=pickle.dumps(sent)
    )
    assert not server
    assert "jupyter_cocalc_sync.documents.notebook" not in loaded
