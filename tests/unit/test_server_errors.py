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


# (as the clean-clone CI saw it in a shared server's log: a kernel shut down politely)
SHUTDOWN_FLUSH = """server.log: Traceback (most recent call last):
  File "/usr/lib/python3.11/site-packages/zmq/eventloop/zmqstream.py", line 585, in _log_error
    f.result()
  File "/usr/lib/python3.11/site-packages/ipykernel/kernelbase.py", line 372, in dispatch_control
    await self.process_control(msg)
  File "/usr/lib/python3.11/site-packages/ipykernel/kernelbase.py", line 408, in process_control
    sys.stderr.flush()
  File "/usr/lib/python3.11/site-packages/ipykernel/iostream.py", line 694, in flush
    self.pub_thread.schedule(self._flush)
  File "/usr/lib/python3.11/site-packages/ipykernel/iostream.py", line 343, in schedule
    self._event_pipe.send(b"")
  File "zmq/backend/cython/_zmq.py", line 190, in zmq.backend.cython._zmq._check_rc
zmq.error.ZMQError: Socket operation on non-socket"""


def test_ipykernels_flush_after_its_shutdown_request_is_benign() -> None:
    assert server_errors.unexpected([SHUTDOWN_FLUSH], []) == []


def test_the_same_error_elsewhere_is_not() -> None:
    # the server's own socket errors, or a kernel's outside that flush, are still errors
    elsewhere = SHUTDOWN_FLUSH.replace(", in process_control", ", in send_reply")
    record = "ERROR jupyter_cocalc_sync.kernels: zmq.error.ZMQError: Socket operation on non-socket"
    assert server_errors.unexpected([elsewhere, record], []) == [elsewhere, record]
