"""What servers logged at ERROR or above during a test: a test fails on any it did not declare.

In-process servers (pytest-jupyter) log through Python's logging: ``LogCapture`` is a handler on
the root logger (pytest-jupyter makes the ServerApp's log propagate; the package's
``jupyter_cocalc_sync.*`` loggers and tornado's propagate too). Subprocess servers write a log
file (``servers.launch``): the lines a test added to each file are read at its end, an error
being a ``[E …]``/``[C …]`` record, a line with `` ERROR ``, or a traceback, with the lines that
follow it up to the next record.

A test that provokes an error on purpose declares it with
``@pytest.mark.expect_errors("regex", …)``: an error whose text (message and traceback) a regex
matches is allowed. ``BENIGN`` lists what servers log at ERROR in normal operation.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

#: a record of tornado's log format (jupyter_server, JupyterHub, the kernel gateway)
RECORD = re.compile(r"^\[[DIWEC] \d")
ERROR_START = re.compile(r"^\[[EC] \d|\sERROR\s|^Traceback \(most recent call last\)")
#: lines kept of one error (its traceback, mostly)
MAX_LINES = 200

#: (why, regex): errors servers log in normal operation, allowed in every test
BENIGN: list[tuple[str, re.Pattern[str]]] = [
    (
        "jupyter_server prints its URL banner at CRITICAL, so it shows at any log level",
        re.compile(r"To access the server, open this file in a browser"),
    ),
    (
        "jupyter_server logs a stop signal at CRITICAL: SIGTERM (the tests stop subprocess "
        "servers with it), SIGINT (JupyterHub stops single-user servers with it); the line "
        "is the entry's first (another process's line can follow it in a shared log)",
        re.compile(r"\A[^\n]*\] received signal (15|2), stopping$", re.MULTILINE),
    ),
    (
        "JupyterHub logs a SIGTERM at CRITICAL (the tests stop the hub with it)",
        re.compile(r"\] Received signal SIGTERM, initiating shutdown\.\.\.$"),
    ),
    (
        "jupyter_server logs the headers of a 5xx answer as a record of its own; the status line "
        "next to it is what a test sees (and declares)",
        re.compile(r'^(ERROR \S+: |\S+\.log: \[E [^]]+\] )\{\n\s+"Host": '),
    ),
    (
        "jupyter_server's contents manager validates what it saves: a notebook a client gave "
        "metadata nbformat forbids is saved with this line, by stock jupyter-collaboration too "
        "(the differential suite compares the two files)",
        re.compile(r"(ERROR \S+|\[E [^]]+\]) Notebook JSON is invalid: "),
    ),
    (
        "jupyter_client interrupts (SIGINT) every kernel it shuts down; one still starting "
        "prints a KeyboardInterrupt traceback to the server's log (the kernel's stderr: the "
        "server's own errors are records, never a bare traceback)",
        re.compile(
            r"(?s)^\S+\.log: Traceback \(most recent call last\):\n.*\nKeyboardInterrupt(\n|$)"
        ),
    ),
    (
        "ipykernel flushes stdout and stderr after every control message, a shutdown_request "
        "too: if the kernel's main thread has stopped its IOPub thread by then (the kernel is "
        "exiting), the flush fails and the kernel prints the traceback on its way out (its "
        "stderr, in the server's log); a race of every polite kernel shutdown",
        re.compile(
            r"(?s)^\S+\.log: Traceback \(most recent call last\):\n.*, in process_control\n"
            r"\s+sys\.std(out|err)\.flush\(\)\n.*"
            r"\nzmq\.error\.ZMQError: Socket operation on non-socket(\n|$)"
        ),
    ),
    (
        "jupyter_server's kernel websocket handler drops its connection when the browser "
        "closes the websocket while the connection still waits for the kernel (a tab "
        "reconnecting during Restart Kernel): the handler then fails on the missing connection "
        "and logs it as an uncaught exception and a 500 (its own race, with any connection "
        "class)",
        re.compile(
            r"(?s)Uncaught exception GET /api/kernels/[\w-]+/channels\?.*in select_subprotocol"
            r".*AttributeError: 'NoneType' object has no attribute 'kernel_ws_protocol'"
            r"|\] 500 GET /api/kernels/[\w-]+/channels\?session_id=[\w-]+ \("
        ),
    ),
]

_watched: dict[Path, None] = {}
_watched_lock = threading.Lock()


def watch(log_path: Path) -> None:
    """Read ``log_path`` (a subprocess server's log) for errors at the end of each test."""
    with _watched_lock:
        _watched[log_path] = None


def log_offsets() -> dict[Path, int]:
    """How far each watched log file is written now."""
    with _watched_lock:
        paths = list(_watched)
    return {path: path.stat().st_size if path.exists() else 0 for path in paths}


def log_file_errors(since: dict[Path, int]) -> list[str]:
    """The errors written to the watched log files after ``since`` (files watched since
    then are read whole). Files that were read to their end and whose process is gone stay
    watched: reading an unchanged file costs nothing."""
    with _watched_lock:
        paths = list(_watched)
    errors: list[str] = []
    for path in paths:
        if not path.exists():
            continue
        with path.open("rb") as file:
            file.seek(since.get(path, 0))
            text = file.read().decode(errors="replace")
        errors.extend(f"{path.name}: {entry}" for entry in error_entries(text.splitlines()))
    return errors


def error_entries(lines: list[str]) -> list[str]:
    """Each error in a log's ``lines``, with the lines that belong to it."""
    entries: list[str] = []
    current: list[str] | None = None
    for line in lines:
        if current is not None and not RECORD.match(line):
            if len(current) < MAX_LINES:  # its traceback, or what else the process printed
                current.append(line)
            continue
        if current is not None:
            entries.append("\n".join(current))
            current = None
        if ERROR_START.search(line):
            current = [line]
    if current is not None:
        entries.append("\n".join(current))
    return entries


class LogCapture(logging.Handler):
    """Keeps the text of every record at ERROR or above (with its traceback)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.entries: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.entries.append(self.format(record))
        except Exception:  # a record that cannot be formatted is still an error
            self.entries.append(f"{record.levelname} {record.name}: {record.msg!r}")


def unexpected(entries: list[str], allowed: list[str]) -> list[str]:
    """The ``entries`` no ``allowed`` regex (nor ``BENIGN``) matches."""
    patterns = [re.compile(p) for p in allowed] + [p for _, p in BENIGN]
    return [e for e in entries if not any(p.search(e) for p in patterns)]
