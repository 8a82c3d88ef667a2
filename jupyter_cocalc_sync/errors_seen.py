"""Errors caught by the catch-alls that must stay broad, logged once and counted by place.

A few ``except Exception`` blocks keep something alive that one failure must not end: a room
every client of a notebook is in, a reader task, the save or poll loop of a document. Each one
calls ``count_error(place, exc)``: the error is logged there, once, at ERROR with its traceback,
and counted under ``place`` (a short stable name such as ``"room.message"``).
``GET /api/cocalc-sync/status`` reports the counts, so an error swallowed to keep the server
going is still seen (and a test fails on its log line). The counts are per process.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any, TypeAlias

log = logging.getLogger(__name__)

#: a logger, or a handler's adapter of one (jupyter_server's ``self.log``)
AnyLogger: TypeAlias = logging.Logger | logging.LoggerAdapter[Any]

_counts: Counter[str] = Counter()
_lock = threading.Lock()  # (worker threads count too)


def count_error(
    place: str, exc: BaseException, what: str = "", *, logger: AnyLogger | None = None
) -> None:
    """Log ``exc`` at ERROR with its traceback as ``what`` failed at ``place``; count it."""
    with _lock:
        _counts[place] += 1
    (logger or log).error(
        "%s [%s]: %s", what or "unexpected error", place, _summary(exc), exc_info=exc
    )


def errors_seen() -> dict[str, int]:
    """``{place: count}`` of the errors counted so far in this process."""
    with _lock:
        return dict(_counts)


def _summary(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
