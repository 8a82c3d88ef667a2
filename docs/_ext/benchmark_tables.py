"""The benchmark tables, generated from the published results: ``{benchmark-runs}``.

``cocalc_benchmark_results`` (in ``conf.py``) is the JSON file ``bench/publish.py`` keeps
(``python bench/run.py --publish``): a list of runs, each with its command, date, machine,
load averages, package versions and rows. Each run becomes one table headed by when, where
and under what load it ran, so rows from different runs are never mixed in one table.
Numbers are formatted as ``bench/report.py`` formats them in ``latest.md``; values given as
text (runs transcribed from earlier tables) are shown as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from doc_nodes import code, inline, table
from docutils import nodes
from report import fmt
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def value(cell: float | str | None) -> str:
    return cell if isinstance(cell, str) else fmt(cell)


def ratio(cell: float | str | None) -> str:
    if cell is None or isinstance(cell, str):
        return cell or "–"
    return f"{cell:.2f}×"


def machine_text(machine: dict[str, Any]) -> str:
    cpus = f"{machine['cpus']} CPUs" if machine.get("cpus") else "CPUs not recorded"
    model = machine.get("cpu_model") or "CPU model not recorded"
    return f"{cpus}, {model}" + (f"; {machine['os']}" if machine.get("os") else "")


def load_text(load: dict[str, Any]) -> str:
    """The load averages of a run, as sampled (or as recorded in prose, or not at all)."""
    during = load.get("during")
    if during:
        text = (
            f"{during['min']:.2f}–{during['max']:.2f}, mean {during['mean']:.2f} "
            f"(1-minute load average, {during['samples']} samples every "
            f"{during['interval_s']:g} s)"
        )
        if load.get("before"):
            text += "; before the run " + " / ".join(f"{x:.2f}" for x in load["before"])
        return text
    if load.get("noted"):
        return f"{load['noted']} (recorded in prose at the time, not sampled)"
    return "not recorded"


def versions_text(versions: dict[str, dict[str, str]] | None) -> str:
    if not versions:
        return "not recorded"
    return "; ".join(
        f"{stack}: " + ", ".join(f"{name} {version}" for name, version in packages.items())
        for stack, packages in versions.items()
    )


def run_nodes(run: dict[str, Any]) -> list[nodes.Node]:
    when = run["date"].replace("T", " ").replace("Z", " UTC")  # 2026-12-06T13:55Z, or a day
    heading = nodes.rubric("", "", code(run["command"]), nodes.Text(f" — {when}"))
    facts = nodes.bullet_list()
    duration = f"{run['duration_s']} s" if run.get("duration_s") is not None else "not recorded"
    for label, text in [
        ("Benchmarks", ", ".join(run["benchmarks"])),
        ("Machine", machine_text(run["machine"])),
        ("Load during the run", load_text(run["load"])),
        ("Duration", duration),
        ("Versions", versions_text(run.get("versions"))),
    ]:
        facts += nodes.list_item(
            "", nodes.paragraph("", "", nodes.strong(text=f"{label}: "), *inline(text))
        )
    result: list[nodes.Node] = [heading, facts]
    if run.get("note"):
        result.append(nodes.paragraph("", "", *inline(run["note"])))
    with_notes = any(row.get("notes") for row in run["rows"])
    headers = ["benchmark", "stock", "ours", "unit", "ratio"] + (["notes"] if with_notes else [])
    rows = []
    for row in run["rows"]:
        cells = [row["benchmark"], value(row["stock"]), value(row["ours"]), row["unit"]]
        cells.append(ratio(row["ratio"]))
        if with_notes:
            cells.append(row.get("notes") or "")
        rows.append(cells)
    result.append(table(headers, rows, prose_column=0))
    return result


class BenchmarkRunsDirective(SphinxDirective):
    """Every published benchmark run: its facts, then its table."""

    def run(self) -> list[nodes.Node]:
        path = Path(self.env.app.confdir) / self.config.cocalc_benchmark_results
        self.env.note_dependency(str(path))
        published = json.loads(path.read_text(encoding="utf-8"))
        result: list[nodes.Node] = []
        for run in published["runs"]:
            result += run_nodes(run)
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("cocalc_benchmark_results", "benchmarks/results.json", "env")
    app.add_directive("benchmark-runs", BenchmarkRunsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
