"""The log reading that fails a test on a server's errors (``tests/server_errors.py``)."""

from __future__ import annotations

import server_errors


def test_a_log_file_error_keeps_its_traceback_and_ends_at_the_next_record():
    lines = [
        "[I 2026-01-01 10:00:00.000 ServerApp] started",
        "[E 2026-01-01 10:00:01.000 ServerApp] saving x.ipynb failed [file.save]: OSError",
        "    Traceback (most recent call last):",
        "    OSError: disk full",
        "[W 2026-01-01 10:00:02.000 ServerApp] later",
        "Traceback (most recent call last):",
        '  File "kernel.py", line 1',
        "KeyError: 1",
    ]
    entries = server_errors.error_entries(lines)
    assert entries == ["\n".join(lines[1:4]), "\n".join(lines[5:])]


def test_only_declared_errors_are_allowed():
    entries = ["ERROR a: boom [room.message]", "ERROR b: other"]
    assert server_errors.unexpected(entries, [r"\[room\.message\]"]) == ["ERROR b: other"]
    assert server_errors.unexpected(entries, []) == entries
