"""Samplers of a server process: peak RSS and the slowest ``GET /api/status`` (from outside),
and the event-loop stall probe inside the server (``server_plugins.LoopStallProbe``)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
from harness import BenchServer


class _Sampler:
    """Runs ``_sample_once`` every ``interval`` s on a thread of its own while entered (a
    thread, so a busy event loop in the benchmark process does not skip samples)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._resources():
            while not self._stop.is_set():
                self._sample_once()
                self._stop.wait(self.interval)

    def _resources(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def _sample_once(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class LoadSampler(_Sampler):
    """The machine's 1-minute load average every ``interval`` s while entered: how busy the
    machine was with other work while the benchmarks ran (published with their results)."""

    def __init__(self, interval: float = 5.0) -> None:
        super().__init__(interval)
        self.before = os.getloadavg()
        self.after: tuple[float, float, float] | None = None
        self.samples: list[float] = []

    def _sample_once(self) -> None:
        self.samples.append(os.getloadavg()[0])

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.after = os.getloadavg()

    def summary(self) -> dict[str, Any]:
        """``before``/``after``: the 1, 5, 15-minute averages; ``during``: the 1-minute one."""
        during = self.samples or [self.before[0]]
        return {
            "before": [round(x, 2) for x in self.before],
            "during": {
                "min": round(min(during), 2),
                "max": round(max(during), 2),
                "mean": round(sum(during) / len(during), 2),
                "samples": len(self.samples),
                "interval_s": self.interval,
            },
            "after": [round(x, 2) for x in self.after] if self.after else None,
        }


class RssSampler(_Sampler):
    """The peak resident memory of a server process, sampled every ``interval`` s."""

    def __init__(self, server: BenchServer, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.server = server
        self.before = server.rss()
        self.peak = self.before
        self.samples = 0

    def _sample_once(self) -> None:
        self.peak = max(self.peak, self.server.rss())
        self.samples += 1


class StallProbe(_Sampler):
    """How long the server's event loop stays unavailable: ``GET /api/status`` every
    ``interval`` s while entered; ``worst`` is the slowest answer (s), ``at`` when it was
    asked (``perf_counter``)."""

    def __init__(self, server: BenchServer, interval: float = 0.02) -> None:
        super().__init__(interval)
        self.server = server
        self.worst = 0.0
        self.at = 0.0
        self.requests = 0
        self._http: httpx.Client | None = None

    def _resources(self) -> contextlib.AbstractContextManager[Any]:
        headers = {"Authorization": f"token {self.server.token}"}
        self._http = httpx.Client(base_url=self.server.url, headers=headers, timeout=300)
        return self._http

    def _sample_once(self) -> None:
        assert self._http is not None
        start = time.perf_counter()
        self._http.get("/api/status").raise_for_status()
        elapsed = time.perf_counter() - start
        self.requests += 1
        if elapsed > self.worst:
            self.worst, self.at = elapsed, start


@dataclass
class LoopStall:
    """What the in-server probe saw in one window: the longest stall of the server's event loop
    (ms), how many stalls passed its threshold (20 ms) and their total, and the loop thread's
    stacks sampled during them (``{"ms", "stack"}``, innermost frame first)."""

    longest_ms: float = 0.0
    stalls: int = 0
    stalled_ms: float = 0.0
    stacks: list[dict[str, Any]] = field(default_factory=list)
    longest_stacks: list[dict[str, Any]] = field(default_factory=list)
    #: the most CPU time the loop thread spent between two wake-ups: the longest stall as work
    #: on the loop (descheduling by a loaded machine not counted; GIL waits not either)
    longest_cpu_ms: float = 0.0
    #: the stacks of the other threads that ran while the loop thread waited for the GIL
    other_stacks: list[dict[str, Any]] = field(default_factory=list)
    longest_other_stacks: list[dict[str, Any]] = field(default_factory=list)
    #: the stalls over the threshold, in order: ``{"at_s", "ms", "cpu_ms", "process_cpu_ms"}``
    #: (the loop thread's CPU time during the stall, and all the process's threads')
    timeline: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> LoopStall:
        return cls(
            report["longest_ms"],
            report["stalls_over_threshold"],
            report["stalled_ms"],
            report["stacks"],
            report["longest_stacks"],
            report.get("longest_cpu_ms", 0.0),
            report.get("other_stacks", []),
            report.get("longest_other_stacks", []),
            report.get("timeline", []),
        )

    @property
    def longest_busy_ms(self) -> float:
        """The longest stall as the server process's own work: each stall over the threshold
        counted for no more than the CPU time the process (all its threads) used during it;
        what the machine's load added by descheduling the process is left out."""
        return max((min(s["ms"], s["process_cpu_ms"]) for s in self.timeline), default=0.0)

    def stalls_over(self, ms: float) -> str:
        """The stalls longer than ``ms``: ``<ms> at <s>`` each (s after the window began)."""
        return (
            ", ".join(
                f"{stall['ms']:.0f} ms at {stall['at_s']:.1f} s"
                for stall in self.timeline
                if stall["ms"] > ms
            )
            or "none"
        )

    def culprit(self, top: int = 3) -> str:
        """Where the loop was during the longest stall, from the stacks sampled in it: the
        ``top`` phases (the two outermost frames of a Jupyter package below its request
        handlers) and the ``top`` hot spots (the innermost such frame), with their sampled ms."""
        if not self.longest_stacks:
            # the watchdog needs the GIL: a thread in native code that keeps it (a big pycrdt
            # update, say) stalls the loop without being sampled
            return "no stack sampled (too short, or another thread held the GIL)"
        where = _where(self.longest_stacks, top)
        if self.longest_other_stacks:
            where += f" (other threads meanwhile: {_where(self.longest_other_stacks, top)})"
        return where


def _where(samples: list[dict[str, Any]], top: int) -> str:
    """The ``top`` phases and hot spots of sampled stacks (``LoopStall.culprit``)."""
    phases: dict[str, float] = {}
    hot: dict[str, float] = {}
    for sample in samples:
        frames = sample["stack"].split(" < ")  # innermost first
        if "selectors.py" in frames[0]:  # the loop is idle: another thread holds the GIL
            frames = [f"- {OTHER_THREAD}"]
        package = [f for f in frames if f.startswith("jupyter_cocalc_sync")] or [
            f for f in frames if f.startswith("jupyter")
        ]
        inner = package[0] if package else frames[0]
        below = [f for f in reversed(package) if not _entry_frame(f)] or [inner]
        for spent, key in ((phases, " > ".join(map(_name, below[:2]))), (hot, _name(inner))):
            spent[key] = spent.get(key, 0.0) + sample["ms"]

    def ranked(spent: dict[str, float]) -> str:
        best = sorted(spent.items(), key=lambda item: -item[1])[:top]
        return ", ".join(f"{key} ~{ms:.0f} ms" for key, ms in best)

    return f"phases: {ranked(phases)}; hot spots: {ranked(hot)}"


OTHER_THREAD = "another-thread-holding-the-GIL"


def _entry_frame(frame: str) -> bool:
    """A frame that only routes a request (a handler, the document manager, auth)."""
    return any(
        part in frame
        for part in ("/handlers/", "documents/manager.py", "jupyter_server/auth/", "tornado/")
    )


def _name(frame: str) -> str:
    """``module.function`` of a sampled frame ``pkg/module.py:line function``."""
    where, _, function = frame.partition(" ")
    if function == OTHER_THREAD:
        return function
    module = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return f"{module}.{function}"


async def loop_stall(http: httpx.AsyncClient, *, reset: bool = True) -> LoopStall:
    """The probe's report since its last reset (a server started with ``loop_probe=True``);
    with ``reset``, a new window starts."""
    response = await http.get("/api/bench/loop-stall", params={"reset": "1" if reset else "0"})
    response.raise_for_status()
    return LoopStall.from_report(response.json())


@contextlib.asynccontextmanager
async def loop_stall_window(http: httpx.AsyncClient) -> AsyncIterator[LoopStall]:
    """The probe's window over the block: the yielded ``LoopStall`` is filled in on exit."""
    await loop_stall(http)
    result = LoopStall()
    yield result
    seen = await loop_stall(http)
    result.longest_ms, result.stalls = seen.longest_ms, seen.stalls
    result.stalled_ms, result.stacks = seen.stalled_ms, seen.stacks
    result.longest_stacks = seen.longest_stacks
    result.longest_cpu_ms = seen.longest_cpu_ms
    result.other_stacks, result.longest_other_stacks = seen.other_stacks, seen.longest_other_stacks
    result.timeline = seen.timeline


@dataclass(frozen=True)
class StoreSize:
    """The size of a server's SQLite store: ``logical``, the bytes of its pages in use as a
    reader sees the database (WAL included, free pages excluded: unaffected by when SQLite
    checkpoints or reuses pages), and ``files``, the database file plus its WAL on disk."""

    logical: int
    files: int

    def __sub__(self, other: StoreSize) -> StoreSize:
        return StoreSize(self.logical - other.logical, self.files - other.files)


def store_size(path: Path) -> StoreSize:
    """``StoreSize`` of the SQLite database at ``path`` (read-only, beside the server)."""
    files = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return StoreSize((pages - free) * page_size, files)
