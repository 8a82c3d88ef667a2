"""``--cpu-durations``: the CPU each test module costs, not only its wall time.

The machine the suite runs on has two cores, so the tier's wall time is bound by the CPU its
tests burn (servers and kernels starting, mostly in other processes). Each test is measured
from the start of its setup to the end of its teardown (a module-scoped fixture's start-up
counts for the module's first test, its stop for the last) as

* the CPU of the test's worker process,
* plus what its waited-for children used (``RUSAGE_CHILDREN``: servers and kernels that were
  stopped, with the kernels those servers waited for),
* plus what its live descendants have used so far (a server a module shares, a fork server;
  each with what its own waited-for children used).

A process that exits unreaped by the worker or a live descendant (an orphan) is missed; the
process guard (``process_guard.py``) fails a test that leaves one. The measurements travel to
the controller with the test's report (``user_properties``), so they add up under xdist.
"""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

#: the name under which a test's report carries its measurement: (CPU seconds, wall seconds)
PROPERTY = "cpu_and_wall_seconds"

#: how many of the most expensive tests the table lists one by one
TESTS_LISTED = 30

_started = pytest.StashKey[tuple[float, float]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cpu-durations")
    group.addoption(
        "--cpu-durations",
        action="store_true",
        help="print each test module's CPU seconds (with its servers' and kernels') and wall "
        "seconds, most CPU first",
    )
    group.addoption(
        "--cpu-durations-file",
        metavar="PATH",
        help="also write that table to PATH (implies --cpu-durations)",
    )


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("cpu_durations") or config.getoption("cpu_durations_file"))


def cpu_seconds_so_far() -> float:
    """CPU used by this process, its reaped descendants and its live ones, until now."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            times = child.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # exited meanwhile: its parent's reaping counts it
        total += times.user + times.system + times.children_user + times.children_system
    return total


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if _enabled(item.config):
        item.stash[_started] = (cpu_seconds_so_far(), time.monotonic())
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        return (yield)
    finally:
        if (started := item.stash.get(_started, None)) is not None:
            cpu, wall = cpu_seconds_so_far() - started[0], time.monotonic() - started[1]
            item.user_properties.append((PROPERTY, (cpu, wall)))


class _CpuTable:
    """On the controller (or the only process): adds up the teardown reports' measurements and
    prints them by module at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.by_module: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        self.by_test: list[tuple[float, float, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        for name, value in report.user_properties:
            if name == PROPERTY:
                row = self.by_module[report.nodeid.split("::")[0]]
                row[0] += 1
                row[1] += value[0]
                row[2] += value[1]
                self.by_test.append((value[0], value[1], report.nodeid))

    def table(self) -> list[str]:
        rows = sorted(self.by_module.items(), key=lambda kv: -kv[1][1])
        total = [sum(r[i] for _, r in rows) for i in range(3)]
        lines = [f"{'CPU s':>8} {'wall s':>8} {'tests':>5}  module"]
        lines += [f"{c:8.1f} {w:8.1f} {int(n):5d}  {m}" for m, (n, c, w) in rows]
        lines.append(f"{total[1]:8.1f} {total[2]:8.1f} {int(total[0]):5d}  total")
        lines += ["", f"the {TESTS_LISTED} tests that cost the most CPU:"]
        lines += [
            f"{c:8.1f} {w:8.1f}        {t}" for c, w, t in sorted(self.by_test)[::-1][:TESTS_LISTED]
        ]
        return lines

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        lines = self.table()
        terminalreporter.write_sep("=", "CPU by test module (worker + its servers and kernels)")
        for line in lines:
            terminalreporter.write_line(line)
        if path := self.config.getoption("cpu_durations_file"):
            Path(path).write_text("\n".join(lines) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    if _enabled(config) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_CpuTable(config), "cpu-durations-table")
