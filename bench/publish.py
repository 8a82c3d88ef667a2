"""Publish a benchmark run to the documentation: ``python bench/publish.py [run.json]``.

``python bench/run.py`` writes each run as data to ``bench/results/latest.json``: the command,
the date, the machine (CPUs, CPU model, OS), the load averages before, during and after the
run, the package versions of both stacks, and the rows, each with the benchmark module it
came from. Publishing (this script, or ``python bench/run.py --publish``) puts the run into
``docs/benchmarks/results.json``, the committed file the documentation's benchmark tables are
generated from: the run replaces the rows of every module it ran, and earlier runs keep the
rows of the other modules, each table with its own date, machine and load. A run in which a
module failed is not published (its rows would be missing). The README's table of the
everyday rows is written from the published runs at the same time (``readme_table.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import readme_table  # (bench/ is not a package: run as a script, its folder is on the path)

BENCH_DIR = Path(__file__).resolve().parent
LATEST_JSON = BENCH_DIR / "results" / "latest.json"
PUBLISHED_JSON = BENCH_DIR.parent / "docs" / "benchmarks" / "results.json"
README = BENCH_DIR.parent / "README.md"
FORMAT = 1


def merged(published: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The published runs with ``run`` added, its modules' older rows dropped."""
    if run["failed"]:
        raise ValueError(f"not publishing a run whose modules failed: {', '.join(run['failed'])}")
    replaced = set(run["benchmarks"])
    runs = []
    for earlier in published.get("runs", []):
        rows = [row for row in earlier["rows"] if row["module"] not in replaced]
        if rows:
            kept = [name for name in earlier["benchmarks"] if name not in replaced]
            runs.append({**earlier, "benchmarks": kept, "rows": rows})
    return {"format": FORMAT, "runs": [*runs, run]}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def publish(run: dict[str, Any], published: Path = PUBLISHED_JSON, readme: Path = README) -> None:
    """Add ``run`` to the published runs, and write the README's table from them."""
    current = json.loads(published.read_text(encoding="utf-8")) if published.exists() else {}
    runs = merged(current, run)
    write_json(published, runs)
    if not readme_table.rewrite(readme, runs):
        raise ValueError(f"{readme} has no benchmark table markers ({readme_table.BEGIN})")


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else LATEST_JSON
    run = json.loads(source.read_text(encoding="utf-8"))
    try:
        publish(run)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"published {source} to {PUBLISHED_JSON}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
