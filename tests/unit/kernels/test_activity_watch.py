"""``SharedActivityWatch``: a kernel's activity recorded from the messages our connection
decoded: every status message's state as jupyter_server records it, the activity at most once
per ``ACTIVITY_RESOLUTION`` but at every idle status."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

from jupyter_cocalc_sync.kernels import activity_watch
from jupyter_cocalc_sync.kernels.activity_watch import (
    ACTIVITY_RESOLUTION,
    ActivityRecorder,
    SharedActivityWatch,
)


def message(msg_type: str, **content: Any) -> dict[str, Any]:
    return {
        "header": {"msg_type": msg_type},
        "parent_header": {"msg_type": "execute_request"},
        "content": content,
    }


def watched(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[SimpleNamespace, SharedActivityWatch, ServerKernelManager, ActivityRecorder, list[Any]]:
    """A clock, a manager, its idle kernel, the recorder of its activity, and the values its
    ``last_activity`` was set to."""
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(activity_watch, "time", SimpleNamespace(monotonic=lambda: clock.now))
    manager = SharedActivityWatch()
    kernel = ServerKernelManager()
    kernel.execution_state = "idle"
    manager._kernels["k"] = kernel
    record = manager.share_activity("k")
    assert record is not None
    recorded: list[Any] = []
    kernel.observe(lambda change: recorded.append(change["new"]), names="last_activity")
    return clock, manager, kernel, record, recorded


def test_status_is_recorded_each_time_and_other_messages_once_per_resolution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, manager, kernel, record, recorded = watched(monkeypatch)

    record(message("status", execution_state="busy"))
    assert kernel.execution_state == "busy" and len(recorded) == 1
    for _ in range(20):  # a cell's outputs, all within the resolution of its start
        record(message("stream", name="stdout", text="x"))
    assert len(recorded) == 1
    clock.now += ACTIVITY_RESOLUTION
    record(message("stream", name="stdout", text="x"))
    record(message("stream", name="stdout", text="x"))
    assert len(recorded) == 2  # a kernel that keeps working is active at least that often
    record(message("status", execution_state="idle"))
    assert kernel.execution_state == "idle" and len(recorded) == 3  # its end: exact
    assert manager.last_kernel_activity == recorded[-1]


def test_a_busy_status_soon_after_a_recording_sets_the_state_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, _manager, kernel, record, recorded = watched(monkeypatch)

    record(message("status", execution_state="busy"))
    record(message("status", execution_state="idle"))
    assert len(recorded) == 2
    # the next run, within the resolution: its last_activity is the idle's, at most that old
    record(message("status", execution_state="busy"))
    assert kernel.execution_state == "busy" and len(recorded) == 2
    record(message("status", execution_state="idle"))
    assert kernel.execution_state == "idle" and len(recorded) == 3  # its end: exact
    clock.now += ACTIVITY_RESOLUTION
    record(message("status", execution_state="busy"))
    assert kernel.execution_state == "busy" and len(recorded) == 4
