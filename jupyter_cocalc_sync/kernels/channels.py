"""Our client channels to one kernel process: sending without blocking, and the readers.

Every send goes through ``start_send`` on a ``zmq.asyncio`` socket and never blocks the event
loop. (jupyter_client's ``Session.send`` turns an asyncio socket back into a blocking one; with
``IMMEDIATE`` set and no live peer, such a send waits forever, and the whole server with it.)
Every message is handed to a ``ChannelListener`` (iopub's from the event loop's reader callback
of its socket, all that came in one go; shell's and stdin's from one reader task each); replies
to our own shell requests (``kernel_info``, ``complete``, ``inspect``) are matched here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, Protocol, cast

import zmq
import zmq.asyncio
from jupyter_client._version import protocol_version_info
from jupyter_client.adapter import adapt
from jupyter_client.client import KernelClient
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

from ..errors import KernelError
from ..errors_seen import count_error

log = logging.getLogger(__name__)

Message = dict[str, Any]
#: the channels we send on
Channel = Literal["shell", "stdin"]

#: How long a message may wait for the kernel's end of the connection to take it. The kernel's
#: death is noticed sooner (the process exit is watched); this bounds the rest (a kernel that
#: never completes its connection).
SEND_TIMEOUT = 30.0

#: After a kernel_info reply, how long to wait for proof that iopub is subscribed before
#: asking again (ZMQ's slow joiner: a kernel publishes before the subscription reaches it).
IOPUB_HANDSHAKE_WAIT = 1.0

#: what jupyter_client's ``Session`` raises on a message it cannot read (a bad signature, too
#: few parts, JSON that does not parse, a header without its fields)
UNREADABLE = (ValueError, TypeError, KeyError, IndexError)

#: At most this many event-loop turns are spent reading what a dead kernel sent last.
DRAIN_ROUNDS = 100

#: how the version of a message of the current protocol begins (``adapt`` leaves it as it is)
CURRENT_PROTOCOL = f"{protocol_version_info[0]}."


class ConnectionClosed(KernelError):
    """The connection to the kernel closed while we waited (its process exited, or we closed)."""


class ChannelListener(Protocol):
    """Who gets the kernel's messages (the execution queue)."""

    def on_iopub(self, msg: Message) -> None: ...

    def on_shell(self, msg: Message) -> None:
        """A shell message that is not the reply to one of ``Connection.request``'s requests."""

    def on_stdin(self, msg: Message) -> None: ...


class Replies:
    """What every connection to a kernel shares: replies matched to our shell requests, the
    iopub probe of the handshake, and handing the rest of the messages to the listener.
    """

    def __init__(self, session: Session, listener: ChannelListener) -> None:
        self.session = session
        self.open = True
        self.tasks: list[asyncio.Task[None]] = []
        self._listener = listener
        self._replies: dict[str, asyncio.Future[Message]] = {}
        self._iopub_probe: asyncio.Future[None] | None = None
        #: records each iopub message as the kernel's activity for jupyter_server, when this
        #: connection took that over (``activity_watch``)
        self.record_activity: Callable[[Message], None] | None = None

    def fail_waiters(self, reason: str) -> None:
        replies, self._replies = self._replies, {}
        for waiter in replies.values():
            if not waiter.done():
                waiter.set_exception(ConnectionClosed(reason))

    async def send(self, channel: Channel, msg: Message) -> None:
        """Send ``msg``; ``KernelError`` if the kernel's end does not take it in time."""
        await settle(self.start_send(channel, msg))

    def start_send(self, channel: Channel, msg: Message) -> asyncio.Future[Any]:
        """Hand ``msg`` to ``channel`` now if it takes it, else once it does (``settle``)."""
        raise NotImplementedError

    def close(self, reason: str) -> None:
        """Stop reading and sending; pending requests fail with ``ConnectionClosed``."""
        if not self.open:
            return
        self.open = False
        for task in self.tasks:
            task.cancel()
        self._close_transport(reason)
        self.fail_waiters(reason)

    def _close_transport(self, reason: str) -> None:
        """Close the sockets (pending sends are cancelled: nothing reaches a later process)."""
        raise NotImplementedError

    async def handshake(self, timeout: float) -> dict[str, Any]:
        """Wait until the kernel answers on every channel; its kernel_info reply."""
        async with asyncio.timeout(timeout):
            return await self._answered_on_shell_and_iopub()

    async def _answered_on_shell_and_iopub(self) -> dict[str, Any]:
        """Ask for kernel_info until its reply and an iopub message have both come.

        A kernel_info reply proves shell. Iopub messages published before the subscription
        reaches the kernel are lost (ZMQ's slow joiner: our SUB socket, or a gateway's after
        the kernel behind it restarted), so any iopub message must come too; the kernel
        publishes its busy/idle status around each request.
        """
        while True:
            self._iopub_probe = asyncio.get_running_loop().create_future()
            try:
                info = await self.request("kernel_info_request", {})
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IOPUB_HANDSHAKE_WAIT):
                        await self._iopub_probe
                    return info
            finally:
                self._iopub_probe = None

    async def drain(self) -> None:
        """Let the readers take what the kernel sent before it died."""

    async def request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Send a shell request and return its reply's content.

        No time limit on the reply: the kernel answers after the cell it is running. A death
        of the kernel ends the wait (``ConnectionClosed``), through ``close``.
        """
        msg = self.session.msg(msg_type, content)
        msg_id = msg["header"]["msg_id"]
        waiter = self._replies[msg_id] = asyncio.get_running_loop().create_future()
        try:
            await self.send("shell", msg)
            reply = await waiter
        finally:
            self._replies.pop(msg_id, None)
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: a close failed it while the send was under way
            waiter.cancel()
        answer: dict[str, Any] = reply["content"]
        return answer

    def _on_iopub(self, msg: Message) -> None:
        probe = self._iopub_probe
        if probe is not None and not probe.done():
            probe.set_result(None)
        if self.record_activity is not None:
            self.record_activity(msg)
        self._listener.on_iopub(msg)

    def _on_shell(self, msg: Message) -> None:
        waiter = self._replies.pop(msg["parent_header"].get("msg_id"), None)
        if waiter is None:
            self._listener.on_shell(msg)
        elif not waiter.done():
            waiter.set_result(msg)


class Connection(Replies):
    """Client channels (shell, iopub, stdin) to one kernel process, and their reader tasks."""

    def __init__(self, km: KernelManager, session: Session, listener: ChannelListener) -> None:
        super().__init__(session, listener)
        self.client = km.client(session=session, context=client_context())
        self.client.start_channels(shell=True, iopub=True, stdin=True, hb=False, control=False)
        self.iopub: zmq.asyncio.Socket = self.client.iopub_channel.socket
        self.shell: zmq.asyncio.Socket = self.client.shell_channel.socket
        self.stdin: zmq.asyncio.Socket = self.client.stdin_channel.socket
        self.tasks = [
            background(self._read(self.shell, self._on_shell)),
            background(self._read(self.stdin, listener.on_stdin)),
        ]
        self._loop = asyncio.get_running_loop()
        self._iopub_fd: int = self.iopub.get(zmq.FD)
        #: the iopub socket without its asyncio layer (``_take_iopub``)
        self._iopub_now: zmq.Socket[bytes] = zmq.Socket.shadow(self.iopub.underlying)
        self._loop.add_reader(self._iopub_fd, self._take_iopub)
        self._loop.call_soon(self._take_iopub)  # (what came before the watch signals nothing)

    def _close_transport(self, reason: str) -> None:
        self._loop.remove_reader(self._iopub_fd)
        stop_started(self.client, ("shell", "iopub", "stdin"))

    # -- sending -------------------------------------------------------------------------------

    def start_send(self, channel: Channel, msg: Message) -> asyncio.Future[Any]:
        """Hand ``msg`` to ``channel`` now if it takes it, else once it does (see ``settle``)."""
        if not self.open:
            raise ConnectionClosed("The kernel is not connected.")
        socket = self.shell if channel == "shell" else self.stdin
        # (``serialize`` leaves out binary buffers: a widget's comm messages carry them)
        sending = socket.send_multipart([*self.session.serialize(msg), *msg.get("buffers", ())])
        # (a zmq.asyncio socket's sends are asyncio futures, typed as awaitables only)
        assert isinstance(sending, asyncio.Future)
        return sending

    # -- connecting ----------------------------------------------------------------------------

    async def handshake(self, timeout: float) -> dict[str, Any]:
        """Wait until all three channels are connected; returns the kernel_info reply.

        Shell and iopub as for every connection; and the kernel's stdin ROUTER drops an
        ``input_request`` for a client whose connection is not complete yet: with
        ``IMMEDIATE`` set, our stdin socket turns writable exactly when it is complete.
        """
        async with asyncio.timeout(timeout):
            info = await self._answered_on_shell_and_iopub()
            await self.stdin.poll(flags=zmq.POLLOUT)  # type: ignore[call-arg]  # pyzmq types the Poller's poll here
        return info

    async def drain(self) -> None:
        """Let the readers take what the kernel sent before it died (often its last words).

        Bounded: each round takes what iopub holds, and yields once to the event loop, which
        hands queued shell and stdin messages to their reader tasks.
        """
        sockets = (self.shell, self.stdin)
        for _ in range(DRAIN_ROUNDS):
            if not self.open:
                return
            self._take_iopub()
            pending = any(_readable(socket) for socket in sockets)
            await asyncio.sleep(0)
            if not pending:
                return

    # -- reading -------------------------------------------------------------------------------

    async def _read(self, socket: zmq.asyncio.Socket, handle: Callable[[Message], None]) -> None:
        while True:
            try:
                received = await socket.recv_multipart()
            except zmq.ZMQError:
                if self.open:
                    raise
                return
            self._take(received, handle)

    def _take_iopub(self) -> None:
        """Handle every iopub message there is, in this one turn of the event loop.

        The kernel publishes a run's messages in a burst (its status, the input, the outputs);
        the iopub socket is read from the loop's reader callback of its descriptor, until it
        is empty (ZMQ signals the descriptor on edges): no future, task wake-up and reader
        re-registration per message, as ``zmq.asyncio``'s ``recv_multipart`` costs. (Shell
        and stdin, which we also send on, keep their reader tasks: a send may consume the
        edge that a reply's arrival signalled, which ``zmq.asyncio`` looks after.)
        """
        socket = self._iopub_now
        while self.open:
            try:
                received = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as e:  # (the socket is gone under us: nothing more comes)
                self._loop.remove_reader(self._iopub_fd)
                log.error("Reading a kernel's iopub failed: %s", e)
                return
            self._take(received, self._on_iopub)

    def _take(self, received: list[bytes], handle: Callable[[Message], None]) -> None:
        session = self.session
        try:
            _idents, frames = session.feed_identities(received)
            msg = decode(session, cast("list[bytes]", frames))  # (received as copies)
        except UNREADABLE as e:
            log.warning("Dropped an unreadable message from a kernel: %s", e)
            return
        try:
            handle(msg)
        except Exception as e:  # a bug of ours: the kernel's next messages still come
            what = f"handling {msg.get('msg_type')} from a kernel"
            count_error("kernel.message", e, what, logger=log)


def decode(session: Session, frames: list[bytes]) -> Message:
    """``session.deserialize(frames)``, but the dates of the headers stay the ISO 8601 strings
    they are: nothing of ours reads them, and parsing two per message was a good part of the
    server's work per kernel message. A message of the current protocol (dated: ``adapt``
    would date it) is what ``adapt`` returns it as, without the call."""
    auth = session.auth  # (the session's settings are traits: each read once)
    if auth is not None:
        signature = frames[0]
        if not signature:
            raise ValueError("Unsigned Message")
        history = session.digest_history
        if signature in history:
            raise ValueError(f"Duplicate Signature: {signature!r}")
        size = session.digest_history_size
        if size:  # (``Session._add_digest``)
            history.add(signature)
            if len(history) > size:
                session._cull_digest_history()
        check = auth.copy()  # (``Session.sign``: the HMAC of the four parts after it)
        for frame in frames[1:5]:
            check.update(frame)
        if not hmac.compare_digest(signature, check.hexdigest().encode()):
            raise ValueError(f"Invalid Signature: {signature!r}")
    if len(frames) < 5:
        raise TypeError("malformed message, must have at least 5 elements")
    unpack = session.unpack  # (a trait: read once)
    header = unpack(frames[1])
    msg: Message = {
        "header": header,
        "msg_id": header["msg_id"],
        "msg_type": header["msg_type"],
        "parent_header": unpack(frames[2]),
        "metadata": unpack(frames[3]),
        "content": unpack(frames[4]),
        "buffers": [memoryview(b) for b in frames[5:]],
    }
    version = header.get("version")
    if isinstance(version, str) and version.startswith(CURRENT_PROTOCOL) and "date" in header:
        return msg
    return adapt(msg)


def _readable(socket: zmq.asyncio.Socket) -> bool:
    events = socket.get(zmq.EVENTS)
    return isinstance(events, int) and bool(events & zmq.POLLIN)


async def settle(sending: asyncio.Future[Any], timeout: float = SEND_TIMEOUT) -> None:
    """Wait for a send started by ``Connection.start_send``; cancel it if it takes too long.

    Raises ``ConnectionClosed`` if the socket closed first, ``KernelError`` on a timeout.
    """
    if not sending.done():
        try:
            await asyncio.wait({sending}, timeout=timeout)
        except asyncio.CancelledError:
            sending.cancel()  # our waiter went away: the message must not go out later
            raise
        if not sending.done():
            sending.cancel()
            raise KernelError(f"The kernel did not take the request within {timeout:g} s.")
    if sending.cancelled():
        raise ConnectionClosed("The connection to the kernel was closed.")
    error = sending.exception()
    if error is not None:
        raise KernelError(f"The request could not be sent to the kernel: {error}") from error


_context: zmq.asyncio.Context | None = None


def stop_started(client: KernelClient, channels: tuple[str, ...]) -> None:
    """Stop the client's ``channels``, which are the ones it started.

    (jupyter_client's ``stop_channels`` first creates and connects a socket for every channel
    that was never started, only to find it not running: four needless connections to the
    kernel, a millisecond or two, on every pooled kernel's claim.)
    """
    for name in channels:
        getattr(client, f"{name}_channel").stop()


def client_context() -> zmq.asyncio.Context:
    """The ZMQ context of our kernel clients: one I/O thread for all, ``IMMEDIATE`` sockets.

    ``IMMEDIATE`` queues outgoing messages only on completed connections, which makes "the
    socket is writable" mean "connected" (see ``Connection.handshake``). It is set on our own
    context so the kernel managers' sockets keep their defaults.
    """
    global _context
    if _context is None or _context.closed:
        _context = zmq.asyncio.Context()
        _context.setsockopt(zmq.IMMEDIATE, 1)
    return _context


def background(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task whose failure is logged even if nobody awaits it."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        if not isinstance(exc, KernelError):  # those are reported through the state
            log.error("Kernel task failed", exc_info=exc)
