"""jupyter_server's kernel activity, recorded from the messages our connection reads anyway.

jupyter_server watches the iopub channel of every kernel on a socket of its own
(``start_watching_activity``) and decodes every message there a second time, to keep the
kernel's ``last_activity`` and ``execution_state`` (``/api/kernels``, ``/api/status``, the
culler). A kernel that a notebook's runner drives already has every iopub message received
and decoded by our connection (``channels.Connection``: a SUB socket subscribed to all of
them), so while that connection lives, jupyter_server's watcher of the kernel is closed and
the connection records the activity, by the same rules; when it closes, the watcher comes
back. That spares the server a second receive and decode of every kernel message.

The kernel's status messages (busy and idle around every request) set its
``execution_state`` each, as jupyter_server's watcher does; its ``last_activity`` is set at
most once per ``ACTIVITY_RESOLUTION`` seconds by its other messages and its busy ones (each
recording sets two traits, a good part of the server's work per message), and by every idle
one: while the kernel works, its ``last_activity`` is at most that old, and when it goes idle,
exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

#: records one decoded iopub message of the kernel as activity
ActivityRecorder = Callable[[dict[str, Any]], None]

#: seconds within which a kernel's messages other than its status count as one activity
ACTIVITY_RESOLUTION = 1.0


class SharedActivityWatch(AsyncMappingKernelManager):
    """A kernel manager whose activity watching a connection of ours can take over
    (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # (not annotated upstream)
        #: kernel id -> how many of our connections record its activity
        self._shared_activity: dict[str, int] = {}
        #: kernels jupyter_server wants watched (started, and not stopped since)
        self._watched: set[str] = set()

    def start_watching_activity(self, kernel_id: str) -> None:
        self._watched.add(kernel_id)
        if kernel_id not in self._shared_activity:
            super().start_watching_activity(kernel_id)  # type: ignore[no-untyped-call]
            return
        kernel = self._kernels[kernel_id]
        kernel.reason = ""
        kernel.last_activity = utcnow()

    def stop_watching_activity(self, kernel_id: str) -> None:
        self._watched.discard(kernel_id)
        super().stop_watching_activity(kernel_id)  # type: ignore[no-untyped-call]

    def share_activity(self, kernel_id: str) -> ActivityRecorder | None:
        """Close jupyter_server's watcher of ``kernel_id``; the caller, which receives every
        iopub message of the kernel from now on, records each with the returned function
        until ``unshare_activity``. None if the kernel is not this manager's."""
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            return None
        self._shared_activity[kernel_id] = self._shared_activity.get(kernel_id, 0) + 1
        stream = getattr(kernel, "_activity_stream", None)
        if stream is not None:
            if not stream.socket.closed:
                stream.close()
            kernel._activity_stream = None
        return _KernelActivity(self, kernel)

    def unshare_activity(self, kernel_id: str) -> None:
        """A connection that recorded ``kernel_id``'s activity closed: jupyter_server's
        watcher takes over again when it was the last one (unless the kernel stopped)."""
        count = self._shared_activity.pop(kernel_id, 0) - 1
        if count > 0:
            self._shared_activity[kernel_id] = count
            return
        kernel = self._kernels.get(kernel_id)
        if kernel is None or kernel_id not in self._watched:
            return
        # a new watcher is not activity of the kernel (starting one sets ``last_activity``)
        last: datetime | None = getattr(kernel, "last_activity", None)
        super().start_watching_activity(kernel_id)  # type: ignore[no-untyped-call]
        if last is not None:
            kernel.last_activity = last

    def _record_activity(self, kernel: Any, msg: dict[str, Any], *, stamp: bool = True) -> bool:
        """jupyter_server's ``record_activity``, for a message decoded already (without
        ``stamp``, a status message's ``execution_state`` only); whether it counted as
        activity."""
        msg_type = msg["header"]["msg_type"]
        parent_header = msg.get("parent_header")
        parent_msg_type = None if parent_header is None else parent_header.get("msg_type")
        parent_tracked = self.track_message_type(parent_msg_type)  # type: ignore[no-untyped-call]
        active = bool(
            parent_tracked
            or self.track_message_type(msg_type)  # type: ignore[no-untyped-call]
            or kernel.execution_state == "busy"
        )
        if active and stamp:
            self.last_kernel_activity = kernel.last_activity = utcnow()
        if msg_type != "status":
            return active
        execution_state = msg["content"].get("execution_state")
        if parent_tracked:
            if kernel.execution_state != execution_state:
                kernel.execution_state = execution_state
        elif kernel.execution_state == "starting" and execution_state != "starting":
            # (as jupyter_server: a state after "starting" is "idle" unless a tracked
            # request caused it)
            kernel.execution_state = "idle"
        return active


class _KernelActivity:
    """Records one kernel's iopub messages as its activity (module docstring: its
    ``last_activity`` at most once per ``ACTIVITY_RESOLUTION``, but when it goes idle)."""

    def __init__(self, manager: SharedActivityWatch, kernel: Any) -> None:
        self.manager = manager
        self.kernel = kernel
        self._recorded = -ACTIVITY_RESOLUTION  # time.monotonic() of the latest recording

    def __call__(self, msg: dict[str, Any]) -> None:
        now = time.monotonic()
        recent = now - self._recorded < ACTIVITY_RESOLUTION
        if msg["header"]["msg_type"] != "status":
            if recent:
                return
            stamp = True
        else:
            stamp = not recent or msg["content"].get("execution_state") != "busy"
        if self.manager._record_activity(self.kernel, msg, stamp=stamp) and stamp:
            self._recorded = now
