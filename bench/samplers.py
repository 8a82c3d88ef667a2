"""Samplers of a server process from outside: peak RSS, and the slowest ``GET /api/status``."""

from __future__ import annotations

import contextlib
import threading
import time
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
