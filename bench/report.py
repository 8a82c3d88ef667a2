"""Result rows, statistics and the markdown table every benchmark reports."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TypedDict


class Row(TypedDict):
    benchmark: str
    stock: float | None
    #: None only in a failed scenario's row (``failed_row``)
    ours: float | None
    unit: str
    ratio: float | None
    notes: str


def row(
    benchmark: str,
    stock: float | None,
    ours: float,
    unit: str,
    notes: str = "",
    *,
    lower_is_better: bool = True,
) -> Row:
    """A result row; ``ratio`` > 1 always means ours is better (stock/ours when lower wins)."""
    ratio: float | None = None
    if stock is not None and ours > 0 and stock > 0:
        ratio = stock / ours if lower_is_better else ours / stock
    direction = "lower is better" if lower_is_better else "higher is better"
    return {
        "benchmark": benchmark,
        "stock": stock,
        "ours": ours,
        "unit": unit,
        "ratio": ratio,
        "notes": f"{direction}; {notes}" if notes else direction,
    }


FAILED = "FAILED"


def failed_row(benchmark: str, error: BaseException) -> Row:
    """The row of a scenario that failed: it says so, and why, in place of its numbers."""
    reason = f"{type(error).__name__}: {error}".strip()
    return {
        "benchmark": benchmark,
        "stock": None,
        "ours": None,
        "unit": "",
        "ratio": None,
        "notes": f"{FAILED}: {reason[:500]}",
    }


def failed(rows: Iterable[Row]) -> list[str]:
    """The benchmarks of ``rows`` whose scenario failed."""
    return [r["benchmark"] for r in rows if r["notes"].startswith(FAILED)]


def fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def markdown_table(rows: Iterable[Row]) -> str:
    lines = [
        "| benchmark | stock | ours | unit | ratio (stock/ours) | notes |",
        "|---|---:|---:|---|---:|---|",
    ]
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        notes = r["notes"].replace("|", "\\|")
        lines.append(
            f"| {r['benchmark']} | {fmt(r['stock'])} | {fmt(r['ours'])} | {r['unit']} "
            f"| {ratio} | {notes} |"
        )
    return "\n".join(lines)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(run: Callable[[], list[Row]]) -> None:
    """What a benchmark module does when run as a script: run it, print its table."""
    print(markdown_table(run()))


# -- statistics -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: int) -> float:
    """The ``p``-th percentile (inclusive linear interpolation)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def ms(seconds: float) -> float:
    return seconds * 1000


def load_average() -> str:
    """The 1/5/15-minute load averages, for the notes of a measurement."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())
