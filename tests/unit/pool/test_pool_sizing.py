"""The pool's sizing policy (``pool.sizing``): grown by bursts of starts, bounded, shrinking."""

from __future__ import annotations

from jupyter_cocalc_sync.pool import sizing
from jupyter_cocalc_sync.pool.sizing import Demand, affordable, excess, target_size

MB = 2**20


def demand_of(*times: float) -> Demand:
    demand = Demand()
    for t in times:
        demand.record(t)
    return demand


def test_no_starts_no_peak():
    assert Demand().peak(1000.0, 600.0) == 0
    assert Demand().last_start() is None


def test_ten_starts_at_once_make_a_peak_of_ten():
    assert demand_of(*[100.0] * 10).peak(101.0, 600.0) == 10


def test_the_peak_is_the_busiest_span_not_the_total():
    # one start a minute for ten minutes: never two within a burst span
    spread = demand_of(*(60.0 * i for i in range(10)))
    assert spread.peak(600.0, 600.0) == 1
    # one every 2.5 s: a burst span holds 13 of them (0, 2.5, ..., 30)
    spaced = demand_of(*(2.5 * i for i in range(40)))
    assert spaced.peak(100.0, 600.0) == int(sizing.BURST_SPAN_S / 2.5) + 1


def test_the_peak_is_remembered_for_the_window_then_forgotten():
    demand = demand_of(*[100.0] * 8, 200.0)
    assert demand.peak(350.0, 300.0) == 8  # an idle minute and more later: still grown
    assert demand.peak(401.0, 300.0) == 1  # the burst is out of the window, the later start not
    assert demand.peak(501.0, 300.0) == 0
    assert demand.last_start() is None


def test_a_shorter_window_applies_at_once():
    demand = demand_of(*[100.0] * 5)
    assert demand.peak(110.0, 600.0) == 5
    assert demand.peak(110.0, 5.0) == 0


def test_target_is_size_beyond_the_peak_at_most_max_size():
    assert target_size(size=1, max_size=10, peak=0) == 1
    assert target_size(size=1, max_size=10, peak=1) == 2
    assert target_size(size=1, max_size=10, peak=4) == 5
    assert target_size(size=1, max_size=10, peak=30) == 10
    assert target_size(size=3, max_size=10, peak=2) == 5
    # growth off: max_size at or below size
    assert target_size(size=2, max_size=1, peak=9) == 2
    assert target_size(size=2, max_size=2, peak=9) == 2


def test_the_first_size_kernels_are_always_affordable():
    args = {"pooled_bytes": 500 * MB, "kernel_bytes": 60 * MB, "budget_bytes": 100 * MB}
    assert affordable(size=2, held=1, **args)
    assert not affordable(size=2, held=2, **args)


def test_growth_stops_at_the_memory_budget():
    args = {"size": 1, "held": 3, "kernel_bytes": 60 * MB, "budget_bytes": 240 * MB}
    assert affordable(pooled_bytes=180 * MB, **args)  # 4 × 60 fits exactly
    assert not affordable(pooled_bytes=181 * MB, **args)


def test_excess_above_the_target_is_stopped():
    args = {"size": 1, "pooled_bytes": 0, "budget_bytes": 1000 * MB, "kernel_bytes": 60 * MB}
    assert excess(target=10, ready=10, **args) == 0
    assert excess(target=1, ready=10, **args) == 9
    assert excess(target=4, ready=2, **args) == 0


def test_excess_over_the_budget_is_stopped_down_to_size():
    args = {"target": 10, "ready": 10, "kernel_bytes": 60 * MB, "budget_bytes": 300 * MB}
    # 600 MB held, 300 allowed: five of them go
    assert excess(size=1, pooled_bytes=600 * MB, **args) == 5
    # 301 MB: one goes (rounded up)
    assert excess(size=1, pooled_bytes=301 * MB, **args) == 1
    # never below size
    assert excess(size=8, pooled_bytes=600 * MB, **args) == 2
    assert excess(size=1, pooled_bytes=6000 * MB, **args) == 9
