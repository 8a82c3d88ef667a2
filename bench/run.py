"""Run the benchmarks, ours and stock side by side:
``python bench/run.py [--quick] [--publish] [name ...]``.

Every ``bench/bench_<name>.py`` is a benchmark module with ``run() -> list[Row]``. Without
arguments all of them run; with names, those whose ``<name>`` (or one of their ``ALIASES``)
is given (``--quick``: shorter scenarios, for the modules that have them). One combined
markdown table is printed and written, with the machine and the package versions of both
stacks, to ``bench/results/latest.md``; the same run as data (date, machine, the load
averages sampled during the run, versions, rows) to ``bench/results/latest.json``.
``--publish`` then puts the run into the documentation's results (``publish.py``).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from harness import OURS_PACKAGES, RESULTS_DIR, STOCK_PACKAGES, ensure_stock_venv, package_versions  # noqa: E402 - needs bench/ on sys.path first
from publish import LATEST_JSON, publish, write_json  # noqa: E402 - needs bench/ on sys.path first
from report import Row, failed, failed_row, markdown_table, progress  # noqa: E402 - needs bench/ on sys.path first
from samplers import LoadSampler  # noqa: E402 - needs bench/ on sys.path first


def discover() -> dict[str, ModuleType]:
    """The benchmark modules by name (``bench_rtc.py`` → ``rtc``), in name order."""
    return {
        path.stem.removeprefix("bench_"): importlib.import_module(path.stem)
        for path in sorted(BENCH_DIR.glob("bench_*.py"))
    }


def select(modules: dict[str, ModuleType], names: list[str]) -> dict[str, ModuleType]:
    if not names:
        return modules
    chosen: dict[str, ModuleType] = {}
    for wanted in names:
        matches = [
            name
            for name, module in modules.items()
            if wanted == name or wanted in getattr(module, "ALIASES", ())
        ]
        if not matches:
            raise SystemExit(f"no benchmark {wanted!r}; there are: {', '.join(modules)}")
        chosen.update({name: modules[name] for name in matches})
    return chosen


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "os": platform.platform()}


def versions() -> dict[str, dict[str, str]]:
    return {
        "ours": package_versions(sys.executable, OURS_PACKAGES),
        "stock": package_versions(ensure_stock_venv(), STOCK_PACKAGES),
    }


def machine_info(run: dict[str, Any]) -> str:
    """The machine, load and versions of a run, for the markdown report."""
    host, load = run["machine"], run["load"]
    during = load["during"]
    before = ", ".join(f"{x:.2f}" for x in load["before"])
    return "\n".join(
        [
            f"* CPUs: {host['cpus']} × {host['cpu_model']}; load average before the run: "
            f"{before}; during it (1 minute, every {during['interval_s']:g} s): "
            f"{during['min']:.2f}–{during['max']:.2f}, mean {during['mean']:.2f}",
            f"* OS: {host['os']}",
            f"* ours (main environment, {sys.executable}): {_versions(run['versions']['ours'])}",
            f"* stock (bench/.venv-stock): {_versions(run['versions']['stock'])}",
        ]
    )


FLAGS = ("--quick", "--publish")


def main(argv: list[str]) -> int:
    if "--quick" in argv:  # shorter scenarios where a module has them (it reads BENCH_QUICK)
        os.environ["BENCH_QUICK"] = "1"
    modules = select(discover(), [a for a in argv if a not in FLAGS])
    started_at = datetime.now(UTC)
    results: list[tuple[str, Row]] = []  # (module, row)
    timings: list[str] = []
    failures: list[str] = []
    started = time.perf_counter()
    with LoadSampler() as load:
        for name, module in modules.items():
            progress(f"running {name} …")
            t0 = time.perf_counter()
            try:
                results += [(name, row) for row in module.run()]
            # a benchmark that fails for any reason is a row that says so; the others still run
            except Exception as error:
                traceback.print_exc()
                failures.append(name)
                results.append((name, failed_row(f"{name}: the whole benchmark", error)))
            timings.append(f"{name} {time.perf_counter() - t0:.0f} s")
    total = time.perf_counter() - started
    command = " ".join(["python bench/run.py", *(a for a in argv if a != "--publish")])
    run = {
        "command": command,
        "date": started_at.strftime("%Y-%m-%dT%H:%MZ"),
        "duration_s": round(total),
        "benchmarks": list(modules),
        "failed": failures,
        "machine": machine(),
        "load": load.summary(),
        "versions": versions(),
        "rows": [{"module": name, **row} for name, row in results],
    }
    when = started_at.strftime("%Y-%m-%d %H:%M UTC")
    report = [
        "# Benchmark results",
        "",
        f"`{command}`",
        f"{when}; took {total:.0f} s ({', '.join(timings)}).",
        "Ratio = stock / ours for lower-is-better metrics: above 1 means ours is faster/smaller.",
        "",
        markdown_table(row for _, row in results),
        "",
    ]
    if failures:
        report += [f"**Failed:** {', '.join(failures)} (tracebacks on stderr).", ""]
    failed_scenarios = failed(row for _, row in results)
    if failed_scenarios:
        report += [f"**Failed scenarios:** {'; '.join(failed_scenarios)}.", ""]
    report += ["## Machine", "", machine_info(run), ""]
    text = "\n".join(report)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(text, encoding="utf-8")
    write_json(LATEST_JSON, run)
    if failures:
        return 1
    if "--publish" in argv:
        publish(run)
        progress("published to the documentation's results (docs/benchmarks/results.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
