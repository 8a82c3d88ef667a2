"""The README's benchmark table: the everyday rows, from the published runs.

``bench/publish.py`` rewrites the part of ``README.md`` between the two markers below each time
it publishes a run, so the table always shows the published numbers, with the date, command,
machine and load of the run each row came from; ``python bench/readme_table.py`` writes it
again from ``docs/benchmarks/results.json`` alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- benchmark table: written by bench/publish.py -->"
END = "<!-- end of the benchmark table -->"

#: (module, benchmark, what the README calls it): the rows a Jupyter user meets every day
HEADLINE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("rtc", "edit A→B, median (YNotebook clients)", "edit A→B, JupyterLab clients, median"),
    (
        "rtc",
        "edit A→B, median (stock YNotebook vs our SyncDB clients)",
        "edit A→B, SyncDB clients, median",
    ),
    (
        "rtc",
        "open notebook, median (YNotebook clients)",
        "open a 300-cell / 11 MB notebook, cold, JupyterLab client",
    ),
    ("rtc", "server CPU per cold open (YNotebook clients)", "server CPU per cold open"),
    (
        "rtc",
        "server memory per open notebook (YNotebook clients)",
        "server memory per open notebook",
    ),
    (
        "execute",
        "warm 1+1 → result seen, median (stock /channels, server TCP_NODELAY)",
        "warm `1+1` → result seen, median (stock with TCP_NODELAY)",
    ),
    (
        "execute",
        "server CPU per warm 1+1 (stock /channels vs ours SyncDB A→B)",
        "server CPU per warm `1+1`",
    ),
    (
        "execute",
        "first output of a running cell → seen, median (stock /channels, server TCP_NODELAY)",
        "first output of a running cell → seen (stock with TCP_NODELAY)",
    ),
    ("ipynb", "ipynb import + export vs plain nbformat", "ipynb import + export vs plain nbformat"),
    ("flood", "flood: server peak RSS", "10⁶-line flood: server peak RSS"),
    (
        "flood",
        "flood: longest event-loop stall (in-server probe)",
        "10⁶-line flood: longest event-loop stall",
    ),
    (
        "growth",
        "growth, stdout+progress: longest event-loop stall",
        "200 kB + progress bar: longest event-loop stall",
    ),
    ("stall", "stall: open, JupyterLab client", "20 MB notebook, open: longest event-loop stall"),
    (
        "large",
        "large: open 2000 cells, time to first sync",
        "50 MB / 2,000-cell notebook: time to first sync",
    ),
)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _ratio(value: Any) -> str:
    if not isinstance(value, int | float):
        return str(value)
    shown = f"{value:.2f}×"
    return f"**{shown}**" if value >= 1 else shown


def table(published: dict[str, Any]) -> str:
    """The headline rows of ``published`` (``docs/benchmarks/results.json``) as markdown."""
    found: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
    runs = published.get("runs", [])
    for index, run in enumerate(runs):
        for row in run["rows"]:
            found[(row["module"], row["benchmark"])] = (row, index)
    lines = [
        "| benchmark | stock | ours | unit | stock / ours | run |",
        "|---|---:|---:|---|---:|---|",
    ]
    cited: list[int] = []
    for module, benchmark, label in HEADLINE_ROWS:
        hit = found.get((module, benchmark))
        if hit is None:
            lines.append(f"| {label} | – | – | | not in the published runs | |")
            continue
        row, index = hit
        if index not in cited:
            cited.append(index)
        number = cited.index(index) + 1
        lines.append(
            f"| {label} | {_number(row['stock'])} | {_number(row['ours'])} | {row['unit']} "
            f"| {_ratio(row['ratio'])} | {number} |"
        )
    lines.append("")
    for number, index in enumerate(cited, start=1):
        run = runs[index]
        machine, load = run.get("machine", {}), run.get("load", {}).get("during", {})
        lines.append(
            f"{number}. `{run['command']}`, {run['date']}, {machine.get('cpus', '?')} × "
            f"{machine.get('cpu_model', '?')}, load average {load.get('mean', '?')} "
            f"(during the run, 1 minute)."
        )
    return "\n".join(lines)


def rewrite(readme: Path, published: dict[str, Any]) -> bool:
    """Put ``table(published)`` between the markers of ``readme``; whether it had them."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    readme.write_text(
        text[: start + len(BEGIN)] + "\n" + table(published) + "\n" + text[end:], encoding="utf-8"
    )
    return True


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    published = json.loads((root / "docs" / "benchmarks" / "results.json").read_text("utf-8"))
    if not rewrite(root / "README.md", published):
        print(f"README.md has no benchmark table markers ({BEGIN})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
