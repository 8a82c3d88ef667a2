"""The replay pool keeps big work off the event loop: its worker process is started from a
thread, and big updates travel to and from it in files, a piece at a time."""

from __future__ import annotations

import threading
from multiprocessing.context import SpawnProcess

import pytest

from jupyter_cocalc_sync.store.replay import ReplayPool, merged_state


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
