"""``ActivityClock``: the extension's work marks the server active; runs back to back cost no
task and no timer each."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from jupyter_cocalc_sync.execution.activity_clock import SETTING, ActivityClock


async def test_runs_back_to_back_are_activity_without_a_task_each() -> None:
    settings: dict[str, Any] = {}
    clock = ActivityClock(settings, 60.0)
    tasks = asyncio.all_tasks()
    try:
        clock.work_started()
        started = settings[SETTING]
        assert isinstance(started, datetime)
        ticker = clock._ticker
        for _ in range(3):  # a few runs of ``1+1``
            clock.work_ended()
            clock.work_started()
        clock.work_ended()
        assert asyncio.all_tasks() == tasks and clock.working == 0
        assert clock._ticker is ticker and ticker is not None  # (one refresh, left to lapse)
        assert settings[SETTING] >= started
    finally:
        clock.close()
