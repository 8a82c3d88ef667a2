"""What a test's server prints when the test finds it hung: the stacks of its threads
(SIGUSR1, faulthandler) and of its event loop's tasks (SIGUSR2), into its log.

``install()`` runs in the server (its Jupyter config file calls it); ``hang_report`` in the
test. A stop that hangs in CI then says where it waited, which a log of a healthy run never
shows.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

#: the line that ends a dump of the tasks
END_OF_TASKS = "--- end of the event loop's tasks"


def config_file_lines() -> str:
    """A Jupyter config file's lines that ``install()`` in the server reading it."""
    tests = str(Path(__file__).resolve().parent)
    return f"import sys\nsys.path.append({tests!r})\nimport stack_dumps\nstack_dumps.install()\n"


def install() -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGUSR2, _print_tasks)


def _awaited_frames(coroutine: Any) -> Iterator[str]:
    """Where a task waits: each coroutine of its await chain, innermost last."""
    while coroutine is not None:
        frame: FrameType | None = getattr(coroutine, "cr_frame", None) or getattr(
            coroutine, "gi_frame", None
        )
        if frame is not None:
            yield f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        awaited = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)
        is_coroutine = hasattr(awaited, "cr_frame") or hasattr(awaited, "gi_frame")
        if awaited is not None and not is_coroutine:
            yield f"  awaiting {awaited!r:.300}"
        coroutine = awaited


def _print_tasks(signum: int, frame: FrameType | None) -> None:
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        tasks = asyncio.all_tasks(loop)
    except RuntimeError as e:  # (no loop any more: the threads' stacks say the rest)
        print(f"no event loop: {e}", file=sys.stderr)
        tasks = set()
    for task in tasks:
        print(f"{task!r:.300}", file=sys.stderr)
        for line in _awaited_frames(task.get_coro()):
            print(line, file=sys.stderr)
    print(END_OF_TASKS, file=sys.stderr, flush=True)


def hang_report(pid: int, log_path: Path, timeout: float = 15) -> str:
    """Ask the hung server ``pid`` for its stacks; the end of its log, with them."""
    start = len(log_path.read_bytes())
    for dump in (signal.SIGUSR1, signal.SIGUSR2):
        os.kill(pid, dump)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # (its log is a file: nothing to wait on but a read)
        if END_OF_TASKS.encode() in log_path.read_bytes()[start:]:
            break
        time.sleep(0.1)
    log = log_path.read_text(errors="replace")
    return log[max(0, start - 6000) :][-30000:]
