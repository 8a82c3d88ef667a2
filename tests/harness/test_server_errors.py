"""The harness's list of errors servers log in normal operation (``server_errors.BENIGN``)."""

from __future__ import annotations

import server_errors

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
