"""Code a benchmark's *server* process imports (``BenchServer(..., pythonpath=[BENCH_DIR])``):
``NoDelayOnRequest`` (named in ``config``), and the event-loop stall probe, a server extension
(``BenchServer(..., loop_probe=True)``).

Only jupyter_server (and tornado) may be imported here: the stock server runs this from
``bench/.venv-stock``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop


class NoDelayOnRequest(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket, unchanged unless the client connects with
    ``?nodelay=1``: then the server's end of the socket gets TCP_NODELAY (what jupyter_server
    never sets), so one stock server measures both with and without Nagle's algorithm."""

    # the signature of ZMQChannelsWebsocketConnection.connect, which differs from its base's
    def connect(self) -> asyncio.Future[None] | None:  # type: ignore[override]
        if self.websocket_handler.get_argument("nodelay", "") == "1":
            self.websocket_handler.set_nodelay(True)
        return super().connect()


#: the configuration that installs it
NODELAY_ON_REQUEST = {
    "ServerApp": {"kernel_websocket_connection_class": f"{__name__}.NoDelayOnRequest"}
}


# -- the event-loop stall probe (a server extension: ``jpserver_extensions`` {"server_plugins"}) --


class LoopStallProbe:
    """How late the server's event loop runs a task that sleeps ``period`` s in a loop: a wake-up
    ``period + x`` s after the previous one means the loop was busy with something else for
    ``x`` s (a stall). Kept: the longest stall since the last reset, when it ended, how many
    stalls were longer than ``threshold`` and their total.

    A watchdog thread looks at the loop every ``watch_interval`` s; while the probe is more than
    ``threshold`` s late it samples the loop thread's Python stack (``sys._current_frames``), so a
    stall comes with what the loop was doing (each sample stands for ``watch_interval`` s): over
    all stalls, and over the longest one. A loop thread sampled in ``select`` had work to do
    but waited for the GIL: then the stacks of the other threads that are not waiting for work
    are sampled too (``other_stacks``, ``longest_other_stacks``): one of them held it. The
    ``timeline`` lists the stalls over ``threshold`` (when, how long, the loop's CPU time)."""

    def __init__(
        self, period: float = 0.001, threshold: float = 0.02, watch_interval: float = 0.005
    ) -> None:
        self.period = period
        self.threshold = threshold
        self.watch_interval = watch_interval
        self.loop_thread: int | None = None
        self._heartbeat = time.perf_counter()
        self._stop = threading.Event()
        self.reset()

    def reset(self) -> None:
        self.since = time.perf_counter()
        self.longest = 0.0
        self.longest_at = 0.0
        self.stalls = 0  # longer than threshold
        self.stalled = 0.0  # their total
        self.wakeups = 0
        #: the most CPU time the loop thread spent between two wake-ups (s): the longest stall
        #: as work on the loop, whatever the machine's load adds to it by descheduling
        self.longest_cpu = 0.0
        #: stacks sampled during stalls over the threshold, and during the longest stall
        self.stacks: collections.Counter[str] = collections.Counter()
        self.longest_stacks: collections.Counter[str] = collections.Counter()
        self._sampled: list[str] = []  # during the current stall (the watchdog appends)
        #: the other threads' stacks sampled while the loop waited for the GIL
        self.other_stacks: collections.Counter[str] = collections.Counter()
        self.longest_other_stacks: collections.Counter[str] = collections.Counter()
        self._others: list[str] = []  # during the current stall (the watchdog appends)
        #: the stalls over the threshold, the first ``TIMELINE_LENGTH``: (s since the reset,
        #: stall s, the loop thread's CPU s, the process's CPU s: all threads; a stall the
        #: process spent without CPU was the machine's load, or a wait for the disk)
        self.timeline: list[tuple[float, float, float, float]] = []

    async def run(self) -> None:
        self.loop_thread = threading.get_ident()
        threading.Thread(target=self._watch, name="loop-stall-watchdog", daemon=True).start()
        last = time.perf_counter()
        last_cpu = time.thread_time()
        last_process_cpu = time.process_time()
        while not self._stop.is_set():
            await asyncio.sleep(self.period)
            now = time.perf_counter()
            cpu = time.thread_time()
            spent = cpu - last_cpu
            self.longest_cpu = max(self.longest_cpu, spent)
            last_cpu = cpu
            process_cpu = time.process_time()
            process_spent, last_process_cpu = process_cpu - last_process_cpu, process_cpu
            self._heartbeat = now
            stall = max(0.0, now - last - self.period)
            last = now
            self.wakeups += 1
            sampled, self._sampled = self._sampled, []
            others, self._others = self._others, []
            if stall > self.longest:
                self.longest, self.longest_at = stall, now
                self.longest_stacks = collections.Counter(sampled)
                self.longest_other_stacks = collections.Counter(others)
            if stall > self.threshold:
                self.stalls += 1
                self.stalled += stall
                self.stacks.update(sampled)
                self.other_stacks.update(others)
                if len(self.timeline) < TIMELINE_LENGTH:
                    self.timeline.append((now - self.since, stall, spent, process_spent))

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_interval):
            if time.perf_counter() - self._heartbeat <= self.threshold:
                continue
            frames = sys._current_frames()
            frame = frames.get(self.loop_thread or 0)
            if frame is None:
                continue
            self._sampled.append(_stack_summary(frame))
            if _waiting(frame):
                watchdog = threading.get_ident()
                self._others.extend(
                    _stack_summary(other)
                    for thread, other in frames.items()
                    if thread not in (watchdog, self.loop_thread) and not _waiting(other)
                )

    def report(self) -> dict[str, Any]:
        return {
            "longest_ms": self.longest * 1000,
            "longest_cpu_ms": self.longest_cpu * 1000,
            "longest_at_s": self.longest_at - self.since if self.longest else None,
            "stalls_over_threshold": self.stalls,
            "stalled_ms": self.stalled * 1000,
            "threshold_ms": self.threshold * 1000,
            "window_s": time.perf_counter() - self.since,
            "wakeups": self.wakeups,
            "stacks": self._sampled_ms(self.stacks, 20),
            "longest_stacks": self._sampled_ms(self.longest_stacks),
            "other_stacks": self._sampled_ms(self.other_stacks, 20),
            "longest_other_stacks": self._sampled_ms(self.longest_other_stacks),
            "timeline": [
                {
                    "at_s": at,
                    "ms": stall * 1000,
                    "cpu_ms": cpu * 1000,
                    "process_cpu_ms": process_cpu * 1000,
                }
                for at, stall, cpu, process_cpu in self.timeline
            ],
        }

    def _sampled_ms(
        self, stacks: collections.Counter[str], most: int | None = None
    ) -> list[dict[str, Any]]:
        return [
            {"ms": count * self.watch_interval * 1000, "stack": stack}
            for stack, count in stacks.most_common(most)
        ]

    def stop(self) -> None:
        self._stop.set()


#: at most this many stalls are listed in the report's ``timeline``
TIMELINE_LENGTH = 200

#: innermost frames of a thread that waits (for work, a lock, a socket), not runs
_WAITS = (
    "selectors.py",
    "threading.py",
    "queue.py",
    "concurrent/futures/thread.py",
)


def _waiting(frame: types.FrameType) -> bool:
    """Whether the thread whose innermost Python frame is ``frame`` waits rather than runs (it
    is in a blocking call made from one of the ``_WAITS`` modules)."""
    return _module_path(frame.f_code.co_filename) in _WAITS


def _stack_summary(frame: types.FrameType, depth: int = 40) -> str:
    """The innermost ``depth`` frames, innermost first (``package/module.py:line function``), up
    to the event loop's callback runner."""
    frames = []
    while frame is not None and len(frames) < depth:
        code = frame.f_code
        where = _module_path(code.co_filename)
        if where == "asyncio/events.py":  # Handle._run: the rest is the loop itself
            break
        frames.append(f"{where}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back  # type: ignore[assignment]
    return " < ".join(frames)


def _module_path(filename: str) -> str:
    """``pkg/module.py`` from an installed or checked-out file name."""
    parts = Path(filename).parts
    for i, part in enumerate(parts):
        if part in ("site-packages", "jupyter_cocalc_sync"):
            return "/".join(parts[i + (part == "site-packages") :])
    return "/".join(parts[-2:])


class LoopStallHandler(APIHandler):
    """``GET /api/bench/loop-stall``: the probe's report (``?reset=1``: and start a new window)."""

    def initialize(self, probe: LoopStallProbe) -> None:
        self.probe = probe

    @web.authenticated
    def get(self) -> None:
        report = self.probe.report()
        if self.get_argument("reset", "") == "1":
            self.probe.reset()
        self.finish(json.dumps(report))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    probe = LoopStallProbe()
    route = url_path_join(serverapp.base_url, "/api/bench/loop-stall")
    serverapp.web_app.add_handlers(".*$", [(route, LoopStallHandler, {"probe": probe})])
    # the loop the server is about to run (extensions load before it starts)
    IOLoop.current().add_callback(lambda: asyncio.ensure_future(probe.run()))
