"""Execute requests: the queue they wait in, and the emitter each one's messages come out of.

Only one execute request is in flight at a time, so routing a kernel message is one comparison
with the current request's msg_id, and a warm ``1+1`` costs little more than the ZMQ round trip
(no polling, no per-call timeouts). Requests wait in a local queue and are sent one at a time,
so a queued request can be dropped before the kernel sees it, and a kernel that dies never
leaves a request waiting forever (``ExecutionQueue.abort_all``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

from jupyter_client.session import Session

from ..errors import ExecutionTimeoutError, KernelError
from .channels import ConnectionClosed, Message, Replies, background, settle
from .comms import IopubObservers

log = logging.getLogger(__name__)

#: ``ename`` of the error a request ends with when its kernel went away before replying.
DEAD_KERNEL_ENAME = "DeadKernelError"

#: How long a request that went idle may wait for its execute_reply before we check that
#: the kernel sent one at all.
REPLY_GRACE = 0.1


class ExecutingKernel(Protocol):
    """What the queue needs of its kernel."""

    @property
    def connection(self) -> Replies | None:
        """The connection to the kernel's process while the kernel is running, else None."""

    async def interrupt(self) -> None: ...


class CodeExecutionEmitter:
    """The messages of one execute request, in order, as an async iterator.

    ``async for msg in emitter`` yields every iopub message whose parent is this request
    (except ``status``) and stdin ``input_request`` messages; it ends once the kernel has sent
    both the ``execute_reply`` (then in ``reply``) and the ``idle`` status for the request. If
    the kernel goes away first, the last message is a synthetic ``error`` with ``ename``
    ``DeadKernelError`` and ``metadata["synthetic"] = True``, and ``reply`` stays ``None``.
    """

    def __init__(self, queue: ExecutionQueue, request: Message) -> None:
        self.request = request
        self.msg_id: str = request["header"]["msg_id"]
        #: The ``execute_reply`` content, once it arrived.
        self.reply: dict[str, Any] | None = None
        #: True once ``cancel()`` dropped or interrupted this request.
        self.cancelled = False
        self._queue = queue
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._listening = True
        self._finished = False  # the kernel is done with it (or it never reached the kernel)
        self._ended = False  # the end-of-iteration marker is in the inbox
        self._exhausted = False  # an iteration consumed that marker
        self._got_reply = False
        self._got_idle = False
        self._interrupted = False
        self._input_request: Message | None = None
        #: the check that the reply comes after all (``ExecutionQueue.expect_reply``)
        self._reply_check: asyncio.TimerHandle | None = None

    @property
    def code(self) -> str:
        code: str = self.request["content"]["code"]
        return code

    @property
    def pending(self) -> bool:
        """Whether more of the request's messages (or its end) are here already: an iteration
        would take the next without waiting."""
        return not self._inbox.empty()

    @property
    def done(self) -> bool:
        """Whether this request has finished (replied, dropped, or ended by a dead kernel)."""
        return self._finished

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while not self._exhausted:
            msg = await self._inbox.get()
            if msg is None:
                self._exhausted = True
                return
            yield msg

    async def go(self, timeout: float | None = None) -> list[Message]:
        """All messages of this request, once it finished.

        Past ``timeout`` seconds the request is cancelled (the kernel is interrupted) and
        ``ExecutionTimeoutError`` is raised.
        """
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return [msg async for msg in self]
        except TimeoutError:
            if not deadline.expired():
                raise
            await self.cancel()
            self.close()
            raise ExecutionTimeoutError(
                f"Code ran longer than {timeout} s and was interrupted; raise the time limit "
                "if it needs longer."
            ) from None

    async def cancel(self) -> None:
        """Drop this request if it is still queued; interrupt the kernel if it is running."""
        await self._queue.cancel(self)

    def close(self) -> None:
        """Stop listening: iteration ends now; the request itself keeps its place and runs."""
        self._listening = False
        while not self._inbox.empty():
            self._inbox.get_nowait()
        self._end_iteration()

    def send_input(self, value: str) -> None:
        """Answer the pending ``input_request`` (``input()`` or ``getpass``) with ``value``."""
        request, self._input_request = self._input_request, None
        if request is None:
            raise RuntimeError("This request is not waiting for input.")
        self._queue.send_input(value, request)

    # -- fed by the queue ----------------------------------------------------------------------

    def _deliver(self, msg: Message) -> None:
        if self._listening:
            self._inbox.put_nowait(msg)

    def _on_iopub(self, msg: Message) -> None:
        if msg["msg_type"] != "status":
            self._deliver(msg)
        elif msg["content"].get("execution_state") == "idle":
            self._got_idle = True
            if self._got_reply:
                self._finish()
            else:
                self._queue.expect_reply(self)

    def _on_reply(self, msg: Message) -> None:
        if msg["msg_type"] == "execute_reply":
            self.reply = msg["content"]
            self._got_reply = True
            if self._got_idle:
                self._finish()

    def _on_input_request(self, msg: Message) -> None:
        self._input_request = msg
        self._deliver(msg)

    def _abort(self, reason: str, ename: str = DEAD_KERNEL_ENAME) -> None:
        """End with a synthetic error: the request will never get its reply."""
        if self._finished:
            return
        if not self._got_reply:
            content = {"ename": ename, "evalue": reason, "traceback": [f"{ename}: {reason}"]}
            msg = self._queue.session.msg(
                "error", content, parent=self.request["header"], metadata={"synthetic": True}
            )
            msg["buffers"] = []
            self._deliver(msg)
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        self._input_request = None
        if self._reply_check is not None:  # (nearly always: no loop wake-up for nothing)
            self._reply_check.cancel()
            self._reply_check = None
        self._end_iteration()

    def _end_iteration(self) -> None:
        if not self._ended:
            self._ended = True
            self._inbox.put_nowait(None)

    def __repr__(self) -> str:
        return (
            f"<CodeExecutionEmitter {self.msg_id} done={self.done} idle={self._got_idle} "
            f"reply={self._got_reply} interrupted={self._interrupted}>"
        )


class ExecutionQueue:
    """Execute requests of one kernel, sent one at a time; the ``ChannelListener`` of its
    connection. Iopub messages go to ``observers`` first (comms, others' outputs, captures)."""

    def __init__(self, kernel: ExecutingKernel, session: Session) -> None:
        self.session = session
        self.observers = IopubObservers()
        self._kernel = kernel
        self._waiting: deque[CodeExecutionEmitter] = deque()
        self.current: CodeExecutionEmitter | None = None

    def submit(self, content: dict[str, Any]) -> CodeExecutionEmitter:
        """Queue an execute request with ``content``; sent once the ones before it are done."""
        emitter = CodeExecutionEmitter(self, self.session.msg("execute_request", content))
        self._waiting.append(emitter)
        self.pump()
        return emitter

    def pump(self) -> None:
        """Send the next queued request if none is in flight (the hot path: no awaits)."""
        conn = self._kernel.connection
        if self.current is not None or not self._waiting or conn is None:
            return
        emitter = self.current = self._waiting.popleft()
        sending = conn.start_send("shell", emitter.request)
        if not sending.done() or sending.exception() is not None:
            background(self._settle_send(emitter, sending))

    async def _settle_send(
        self, emitter: CodeExecutionEmitter, sending: asyncio.Future[Any]
    ) -> None:
        try:
            await settle(sending)
        except ConnectionClosed:
            return  # the kernel went away: that ends the request (``abort_all``)
        except KernelError as exc:
            if emitter is self.current and not emitter.done:
                emitter._abort(str(exc), "KernelError")
                self._advance()

    def _advance(self) -> None:
        self.current = None
        self.pump()

    async def cancel(self, emitter: CodeExecutionEmitter) -> None:
        if emitter in self._waiting:
            self._waiting.remove(emitter)
            emitter.cancelled = True
            emitter._finish()
        elif emitter is self.current and not emitter.done:
            emitter.cancelled = True
            await self._kernel.interrupt()

    def interrupt_waiting(self, reason: str) -> None:
        """End the requests the kernel has not been sent yet, as interrupted."""
        while self._waiting:
            emitter = self._waiting.popleft()
            emitter.cancelled = True
            emitter._abort(reason, "KeyboardInterrupt")

    def mark_interrupted(self) -> None:
        """An interrupt is on its way to the kernel (see ``expect_reply``)."""
        if self.current is not None:
            self.current._interrupted = True

    def abort_all(self, reason: str) -> None:
        """End every request, in flight or waiting: the kernel will not answer them."""
        current, self.current = self.current, None
        if current is not None:
            current._abort(reason)
        while self._waiting:
            self._waiting.popleft()._abort(reason)

    def send_input(self, value: str, input_request: Message) -> None:
        conn = self._kernel.connection
        if conn is None:
            raise KernelError("The kernel is not connected; the input cannot be sent.")
        reply = self.session.msg("input_reply", {"value": value}, parent=input_request["header"])
        sending = conn.start_send("stdin", reply)
        if not sending.done() or sending.exception() is not None:
            background(_settle_input_reply(sending))

    def expect_reply(self, emitter: CodeExecutionEmitter) -> None:
        """The request went idle before its reply arrived: make sure the reply still comes.

        It usually does, a moment later (shell and iopub are separate sockets). But an
        interrupt that lands after the kernel took the request and before the code started is
        caught by ipykernel outside the cell, and then no ``execute_reply`` is ever sent.
        """
        loop = asyncio.get_running_loop()
        emitter._reply_check = loop.call_later(REPLY_GRACE, self._check_reply, emitter)

    def _check_reply(self, emitter: CodeExecutionEmitter) -> None:
        # (the reply has nearly always come by now: no task for that)
        if emitter is self.current and not emitter.done:
            background(self._confirm_reply(emitter))

    async def _confirm_reply(self, emitter: CodeExecutionEmitter) -> None:
        conn = self._kernel.connection
        if emitter is not self.current or emitter.done or conn is None:
            return
        # The kernel answers shell requests in order, so once this reply is in, an execute
        # reply sent before it would be in too.
        try:
            await conn.request("kernel_info_request", {})
        except ConnectionClosed:
            return  # the kernel went away: that ends the request (``abort_all``)
        except KernelError:
            pass
        if emitter is self.current and not emitter.done:
            if emitter._interrupted:
                emitter._abort("Interrupted before the code started.", "KeyboardInterrupt")
            else:
                emitter._abort("The kernel finished the request without replying.", "KernelError")
            self._advance()

    # -- ChannelListener -----------------------------------------------------------------------

    def on_iopub(self, msg: Message) -> None:
        current = self.current
        ours = current is not None and msg["parent_header"].get("msg_id") == current.msg_id
        if msg["msg_type"] != "status" and self.observers.deliver(msg, ours):
            return
        if ours:
            assert current is not None
            current._on_iopub(msg)
            if current.done:
                self._advance()

    def on_shell(self, msg: Message) -> None:
        current = self.current
        if current is not None and msg["parent_header"].get("msg_id") == current.msg_id:
            current._on_reply(msg)
            if current.done:
                self._advance()

    def on_stdin(self, msg: Message) -> None:
        current = self.current
        if (
            current is not None
            and msg["msg_type"] == "input_request"
            and msg["parent_header"].get("msg_id") == current.msg_id
        ):
            current._on_input_request(msg)


async def _settle_input_reply(sending: asyncio.Future[Any]) -> None:
    try:
        await settle(sending)
    except KernelError as exc:  # the cell goes on waiting for input: it can be answered again
        log.warning("An answer to input() was not sent to the kernel: %s", exc)
