"""Run the benchmarks, ours and stock side by side: ``python bench/run.py [--quick] [name ...]``.

Every ``bench/bench_<name>.py`` is a benchmark module with ``run() -> list[Row]``. Without
arguments all of them run; with names, those whose ``<name>`` (or one of their ``ALIASES``)
is given (``--quick``: shorter scenarios, for the modules that have them). One combined
markdown table is printed and written, with the machine and the package versions of both
stacks, to ``bench/results/latest.md``.
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

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from harness import OURS_PACKAGES, RESULTS_DIR, STOCK_PACKAGES, ensure_stock_venv, package_versions  # noqa: E402 - needs bench/ on sys.path first
from report import Row, markdown_table, progress  # noqa: E402 - needs bench/ on sys.path first


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


def machine_info() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    stock = package_versions(ensure_stock_venv(), STOCK_PACKAGES)
    ours = package_versions(sys.executable, OURS_PACKAGES)
    return "\n".join(
        [
            f"* CPUs: {os.cpu_count()} × {_cpu_model()}; load average before the run: {load}",
            f"* OS: {platform.platform()}",
            f"* ours (main environment, {sys.executable}): {_versions(ours)}",
            f"* stock (bench/.venv-stock): {_versions(stock)}",
        ]
    )


def main(argv: list[str]) -> int:
    if "--quick" in argv:  # shorter scenarios where a module has them (it reads BENCH_QUICK)
        os.environ["BENCH_QUICK"] = "1"
    modules = select(discover(), [a for a in argv if a != "--quick"])
    machine = machine_info()
    rows: list[Row] = []
    timings: list[str] = []
    failures: list[str] = []
    started = time.perf_counter()
    for name, module in modules.items():
        progress(f"running {name} …")
        t0 = time.perf_counter()
        try:
            rows += module.run()
        except Exception:
            traceback.print_exc()
            failures.append(name)
        timings.append(f"{name} {time.perf_counter() - t0:.0f} s")
    total = time.perf_counter() - started
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = [
        "# Benchmark results",
        "",
        f"`{' '.join(['python bench/run.py', *argv])}`",
        f"{when}; took {total:.0f} s ({', '.join(timings)}).",
        "Ratio = stock / ours for lower-is-better metrics: above 1 means ours is faster/smaller.",
        "",
        markdown_table(rows),
        "",
    ]
    if failures:
        report += [f"**Failed:** {', '.join(failures)} (tracebacks on stderr).", ""]
    report += ["## Machine", "", machine, ""]
    text = "\n".join(report)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(text, encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
