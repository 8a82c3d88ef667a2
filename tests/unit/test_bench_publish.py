"""Publishing a benchmark run to the documentation's results (``bench/publish.py``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from publish import merged  # bench/ is not a package: importable with the path above


def run(command: str, rows: dict[str, int], failed: tuple[str, ...] = ()) -> dict[str, Any]:
    """A run of the modules in ``rows`` (module → how many rows it gave)."""
    return {
        "command": command,
        "benchmarks": list(rows) + list(failed),
        "failed": list(failed),
        "rows": [
            {"module": module, "benchmark": f"{module} {i}"}
            for module, count in rows.items()
            for i in range(count)
        ],
    }


def test_a_run_replaces_the_rows_of_the_modules_it_ran_and_keeps_the_others():
    published = merged({}, run("python bench/run.py", {"rtc": 2, "pool": 1, "load": 1}))
    published = merged(published, run("python bench/run.py stateless", {"stateless": 1}))

    published = merged(published, run("python bench/run.py pool load", {"pool": 3, "load": 1}))

    assert [r["command"] for r in published["runs"]] == [
        "python bench/run.py",
        "python bench/run.py stateless",
        "python bench/run.py pool load",
    ]
    first = published["runs"][0]
    assert first["benchmarks"] == ["rtc"]
    assert [row["module"] for row in first["rows"]] == ["rtc", "rtc"]
    assert len(published["runs"][2]["rows"]) == 4


def test_a_run_whose_rows_are_all_replaced_is_dropped():
    published = merged({}, run("python bench/run.py pool", {"pool": 2}))
    published = merged(published, run("python bench/run.py pool", {"pool": 2}))
    assert len(published["runs"]) == 1


def test_a_run_with_a_failed_module_is_not_published():
    with pytest.raises(ValueError, match="stall"):
        merged({}, run("python bench/run.py", {"rtc": 1}, failed=("stall",)))
