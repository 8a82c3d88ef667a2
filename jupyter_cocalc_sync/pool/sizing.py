"""How many kernels the pool keeps ready: its size grows with demand and shrinks when idle.

A pool of ``size`` kernels serves ``size`` opens at once; the opens after those start kernels
cold, and a refill takes a kernel start's time (a second or more on a small machine, many on a
busy one). So the pool keeps ``size`` ready kernels beyond the **peak** of recent demand: the
most kernel starts within any ``BURST_SPAN_S`` seconds of the last ``demand_window_s``. A
class that opened ten notebooks at once makes the pool keep ten ready, and one open makes it
keep a second, until the window has passed without such a burst; then it shrinks back to
``size``.

Bounds, set by the operator: never more than ``max_size`` kernels per pool key, never more
memory than ``max_memory_mb`` for all pooled kernels together (measured resident memory); the
first ``size`` kernels of a key are kept whatever their memory.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

#: kernel starts this close together count as one burst: about the time a few refills take,
#: one after another, on a busy small machine
BURST_SPAN_S = 30.0
#: what a pooled ipykernel's resident memory is taken to be until one has been measured
DEFAULT_KERNEL_BYTES = 80 * 2**20


@dataclass
class Demand:
    """The recent kernel starts of one pool key (the window is the pool's setting at the time
    of asking, so changing it applies at once)."""

    span_s: float = BURST_SPAN_S
    #: monotonic times of the starts, oldest first
    starts: deque[float] = field(default_factory=deque)

    def record(self, now: float) -> None:
        """A kernel start (claimed from the pool or not) at ``now``."""
        self.starts.append(now)

    def forget(self, now: float, window_s: float) -> None:
        """Drop the starts older than the window."""
        while self.starts and self.starts[0] < now - window_s:
            self.starts.popleft()

    def peak(self, now: float, window_s: float) -> int:
        """The most starts within any ``span_s`` seconds of the last ``window_s``."""
        self.forget(now, window_s)
        times = list(self.starts)
        best = 0
        for i, end in enumerate(times):
            first = bisect.bisect_left(times, end - self.span_s, 0, i + 1)
            best = max(best, i + 1 - first)
        return best

    def last_start(self) -> float | None:
        return self.starts[-1] if self.starts else None


def target_size(size: int, max_size: int, peak: int) -> int:
    """Ready kernels to aim for: ``size`` beyond the recent peak, at most ``max_size`` (``size``
    if that is larger)."""
    return max(size, min(size + peak, max_size))


def affordable(
    *,
    size: int,
    held: int,
    pooled_bytes: int,
    kernel_bytes: int,
    budget_bytes: int,
) -> bool:
    """Whether a key that holds ``held`` kernels (ready or starting) may start one more.

    The first ``size`` always may; beyond them, only if one more kernel of ``kernel_bytes``
    keeps every pooled kernel together (``pooled_bytes`` now) within ``budget_bytes``.
    """
    if held < size:
        return True
    return pooled_bytes + kernel_bytes <= budget_bytes


def excess(
    *, size: int, target: int, ready: int, pooled_bytes: int, budget_bytes: int, kernel_bytes: int
) -> int:
    """How many ready kernels to stop: those above ``target``, and above ``size`` as many as
    needed to bring the pool back within its memory budget."""
    over_target = max(0, ready - target)
    if pooled_bytes <= budget_bytes or kernel_bytes <= 0:
        return over_target
    over_budget = -(-(pooled_bytes - budget_bytes) // kernel_bytes)  # (rounded up)
    return max(over_target, min(over_budget, max(0, ready - size)))
