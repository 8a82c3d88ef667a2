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
    path: str | None = None,
    written: bool = False,
) -> tuple[Outcome, Outcome]:
    """Apply ``ops`` on both servers (to ``path``, already ``written`` or written with
    ``initial``); fail, naming the sequence, on a difference that is not deliberate."""
    stock, ours = loop.run(run_on_both(targets, None if written else initial, ops, path))
    found = compare(stock, ours, initial) + ([] if written else gained_history(initial, ours))
    if found:
        shown = "\n".join(f"  - {d}" for d in found[:40])
        more = f"\n  … and {len(found) - 40} more" if len(found) > 40 else ""
        raise AssertionError(
            f"ours differs from jupyter-collaboration{context} after the sequence\n"
            f"{describe(ops)}\ndifferences (not listed in tests/README.md):\n{shown}{more}"
        )
    return stock, ours
