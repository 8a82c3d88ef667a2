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


def test_the_readme_table_shows_each_everyday_row_from_the_run_it_came_from(tmp_path):
    import readme_table

    older = run("python bench/run.py flood", {"flood": 1})
    older["rows"] = [
        {
            "module": "flood",
            "benchmark": "flood: server peak RSS",
            "stock": 258.0,
            "ours": 188.0,
            "unit": "MB",
            "ratio": 258 / 188,
        }
    ]
    newer = run("python bench/run.py execute", {"execute": 1})
    newer["rows"] = [
        {
            "module": "execute",
            "benchmark": "server CPU per warm 1+1 (stock /channels vs ours SyncDB A→B)",
            "stock": 7.7,
            "ours": 10.2,
            "unit": "ms",
            "ratio": 7.7 / 10.2,
        }
    ]
    for index, (each, mean) in enumerate(((older, 1.0), (newer, 1.8))):
        each.update(
            date=f"2026-12-0{index + 1}T10:00Z",
            machine={"cpus": 2, "cpu_model": "Xeon"},
            load={"during": {"mean": mean}},
        )
    published = merged(merged({}, older), newer)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{readme_table.BEGIN}\nold table\n{readme_table.END}\n\nrest\n")

    assert readme_table.rewrite(readme, published)

    text = readme.read_text()
    assert text.startswith("# Title\n\n") and text.endswith(f"{readme_table.END}\n\nrest\n")
    assert "old table" not in text
    # runs are numbered in the order the table cites them
    assert "| server CPU per warm `1+1` | 7.7 | 10.2 | ms | 0.75× | 1 |" in text
    assert "| 10⁶-line flood: server peak RSS | 258 | 188 | MB | **1.37×** | 2 |" in text
    assert (
        "| edit A→B, JupyterLab clients, median | – | – | | not in the published runs | |" in text
    )
    assert "1. `python bench/run.py execute`, 2026-12-02T10:00Z, 2 × Xeon, load average 1.8" in text
    assert "2. `python bench/run.py flood`, 2026-12-01T10:00Z, 2 × Xeon, load average 1.0" in text


def test_a_readme_without_the_markers_is_left_alone(tmp_path):
    import readme_table

    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    assert not readme_table.rewrite(readme, {"runs": []})
    assert readme.read_text() == "# Title\n"
