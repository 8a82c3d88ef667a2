"""One differential check: a sequence on both servers, and a readable failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .compare import compare, gained_history
from .ops import Op
from .runner import LoopThread, Outcome, Target, run_on_both


def describe(ops: Sequence[Op]) -> str:
    return "\n".join(f"  {i + 1}. {op}" for i, op in enumerate(ops)) or "  (no operation)"


def check_sequence(
    loop: LoopThread,
    targets: Sequence[Target],
    initial: dict[str, Any],
    ops: Sequence[Op],
    context: str = "",
) -> tuple[Outcome, Outcome]:
    """Apply ``ops`` on both servers; fail, naming the sequence, on an undeliberate difference."""
    stock, ours = loop.run(run_on_both(targets, initial, ops))
    found = compare(stock, ours, initial) + gained_history(initial, ours)
    if found:
        shown = "\n".join(f"  - {d}" for d in found[:40])
        more = f"\n  … and {len(found) - 40} more" if len(found) > 40 else ""
        raise AssertionError(
            f"ours differs from jupyter-collaboration{context} after the sequence\n"
            f"{describe(ops)}\ndifferences (not listed in tests/README.md):\n{shown}{more}"
        )
    return stock, ours
