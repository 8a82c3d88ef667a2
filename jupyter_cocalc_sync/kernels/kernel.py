"""One Jupyter kernel driven directly over ZMQ: start or attach, execute in order, observe.

``JupyterKernel`` is what a notebook's runner talks to. It either owns its kernel (standalone,
``kernel(name, path)``: an ``AsyncKernelManager`` started in the notebook's folder) or drives the
kernel of a Jupyter session that jupyter_server manages (``JupyterKernel.attach``); then
interrupts and restarts go through jupyter_server and closing only disconnects.

Why it is built this way:

* One reader task per channel (iopub, shell, stdin) routes every message by its parent's
  msg_id. Only one execute request is in flight at a time, so routing is one comparison and a
  warm ``1+1`` costs little more than the ZMQ round trip (no polling, no per-call timeouts).
* Requests wait in a local queue and are sent one at a time, so a queued request can be dropped
  before the kernel sees it, and a kernel that dies never leaves a request waiting forever.
* Death is noticed when the kernel process exits (a Linux pidfd watched by the event loop;
  polling ``is_alive()`` where that is unavailable), not when some timeout runs out. Attached
  kernels also listen to jupyter_server's restarter, which restarts dead kernels by itself: the
  wrapper reports the death, then follows the kernel to its new process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal as signals
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future as ConcurrentFuture
from typing import Any, Literal

import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.session import Session
from jupyter_core.utils import ensure_async

from ..errors import ExecutionTimeoutError, KernelError

log = logging.getLogger(__name__)

Message = dict[str, Any]
KernelState = Literal["off", "spawning", "starting", "running", "closed", "failed"]
StateCallback = Callable[[KernelState], None]

#: ``ename`` of the error a request ends with when its kernel went away before replying.
DEAD_KERNEL_ENAME = "DeadKernelError"

#: How often ``is_alive()`` is polled where the process exit cannot be awaited (no pidfd).
LIVENESS_POLL_INTERVAL = 0.5

#: After the first kernel_info reply, how long to wait for proof that iopub is subscribed
#: before asking again (ZMQ's slow joiner: a kernel publishes before our SUB is connected).
IOPUB_HANDSHAKE_WAIT = 1.0

#: How long a request that went idle may wait for its execute_reply before we check that
#: the kernel sent one at all.
REPLY_GRACE = 0.1

#: At most this many event-loop turns are spent reading what a dead kernel sent last.
DRAIN_ROUNDS = 100


class _KernelExited(KernelError):
    """The kernel process exited while we waited for it (internal: a restart may follow)."""


class CodeExecutionEmitter:
    """The messages of one execute request, in order, as an async iterator.

    ``async for msg in emitter`` yields every iopub message whose parent is this request
    (except ``status``) and stdin ``input_request`` messages; it ends once the kernel has sent
    both the ``execute_reply`` (then in ``reply``) and the ``idle`` status for the request. If
    the kernel goes away first, the last message is a synthetic ``error`` with ``ename``
    ``DeadKernelError`` and ``metadata["synthetic"] = True``, and ``reply`` stays ``None``.
    """

    def __init__(self, kernel: JupyterKernel, request: Message) -> None:
        self.request = request
        self.msg_id: str = request["header"]["msg_id"]
        #: The ``execute_reply`` content, once it arrived.
        self.reply: dict[str, Any] | None = None
        #: True once ``cancel()`` dropped or interrupted this request.
        self.cancelled = False
        self._kernel = kernel
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._listening = True
        self._finished = False  # the kernel is done with it (or it never reached the kernel)
        self._ended = False  # the end-of-iteration marker is in the inbox
        self._exhausted = False  # an iteration consumed that marker
        self._got_reply = False
        self._got_idle = False
        self._interrupted = False
        self._input_request: Message | None = None

    @property
    def code(self) -> str:
        return self.request["content"]["code"]

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
        await self._kernel._cancel(self)

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
        self._kernel._send_input(value, request)

    # -- fed by JupyterKernel's readers --------------------------------------------------------

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
                self._kernel._expect_reply(self)

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
            msg = self._kernel._session.msg(
                "error", content, parent=self.request["header"], metadata={"synthetic": True}
            )
            msg["buffers"] = []
            self._deliver(msg)
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        self._input_request = None
        self._end_iteration()

    def _end_iteration(self) -> None:
        if not self._ended:
            self._ended = True
            self._inbox.put_nowait(None)

    def __repr__(self) -> str:
        return f"<CodeExecutionEmitter {self.msg_id} done={self.done}>"


class _Connection:
    """Client channels to one kernel process, and the tasks that serve them."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.iopub: zmq.asyncio.Socket = client.iopub_channel.socket
        self.shell: zmq.asyncio.Socket = client.shell_channel.socket
        self.stdin: zmq.asyncio.Socket = client.stdin_channel.socket
        self.tasks: list[asyncio.Task[None]] = []
        self.open = True

    def close(self) -> None:
        if self.open:
            self.open = False
            for task in self.tasks:
                task.cancel()
            self.client.stop_channels()


class JupyterKernel:
    """One Jupyter kernel: start it (or attach to a session's kernel) and run code on it.

    States: ``off → spawning → starting → running``, plus ``closed`` and ``failed`` (``error``
    says why); watch them with ``on_state``. Execute requests run one at a time, in order.
    """

    #: Attached mode: how long to wait for jupyter_server to restart a kernel that went away.
    restart_timeout: float = 60.0

    def __init__(
        self,
        name: str = "python3",
        path: str | None = None,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        """A standalone kernel of kernelspec ``name`` for the notebook at ``path``.

        The kernel works in ``cwd`` (default: the notebook's folder) and gets ``env`` on top
        of this process's environment, plus ``JPY_SESSION_NAME`` = ``path``.
        """
        self.name = name
        self.path = os.path.abspath(path) if path else None
        self.cwd = cwd or (os.path.dirname(self.path) if self.path else None)
        self.startup_timeout = startup_timeout
        self.kernel_id: str | None = None
        self._extra_env = dict(env or {})
        self._mkm: Any = None  # attached mode: jupyter_server's multi kernel manager
        self._km: Any = None
        # Our own session id, so our shell/stdin identities never collide with another client
        # of the same kernel; the key is copied from the kernel's manager when connecting.
        self._session = Session()
        self._state: KernelState = "off"
        self._error: str | None = None
        self._state_callbacks: list[StateCallback] = []
        self._state_changed = asyncio.Event()
        self._queue: deque[CodeExecutionEmitter] = deque()
        self._current: CodeExecutionEmitter | None = None
        self._conn: _Connection | None = None
        self._replies: dict[str, asyncio.Future[Message]] = {}
        self._iopub_probe: asyncio.Future[None] | None = None
        self._kernel_info: dict[str, Any] | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._connected_ready: Any = None
        self._restarter_acted = asyncio.Event()
        self._gone = False  # attached: jupyter_server shut the kernel down or gave up on it
        self._closing = False

    @classmethod
    def attach(cls, multi_kernel_manager: Any, kernel_id: str) -> JupyterKernel:
        """Drive the kernel ``kernel_id`` of jupyter_server's ``multi_kernel_manager``.

        ``spawn()`` (or the first request) connects; ``close()`` only disconnects, the kernel
        stays with its session.
        """
        if kernel_id not in multi_kernel_manager:
            raise KernelError(f"jupyter_server has no kernel {kernel_id}; start one first.")
        km = multi_kernel_manager.get_kernel(kernel_id)
        self = cls(name=km.kernel_name)
        self._mkm = multi_kernel_manager
        self._km = km
        self.kernel_id = kernel_id
        return self

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> KernelState:
        return self._state

    @property
    def error(self) -> str | None:
        """Why the kernel failed (``None`` unless it did)."""
        return self._error

    @property
    def attached(self) -> bool:
        return self._mkm is not None

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(state)`` on every state change; returns a function that unsubscribes."""
        self._state_callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._state_callbacks.remove(callback)

        return unsubscribe

    def _set_state(self, state: KernelState) -> None:
        changed = state != self._state
        self._state = state
        # Waiters re-check even without a change: a failed attached kernel may have just been
        # declared gone for good.
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        if changed:
            for callback in list(self._state_callbacks):
                try:
                    callback(state)
                except Exception:
                    log.exception("State callback %r of %r failed", callback, self)

    def _fail(self, reason: str) -> None:
        self._error = reason
        self._abort_requests(reason)
        self._set_state("failed")

    # -- starting ------------------------------------------------------------------------------

    async def spawn(self) -> None:
        """Start the kernel (attached: connect to it) and wait until it answers."""
        await self._until_running()

    def _begin_start(self) -> None:
        if self._start_task is None:
            self._start_task = _background(self._start())

    async def _start(self) -> None:
        self._set_state("spawning")
        try:
            if self.attached:
                await _wait_for(self._km.ready)  # the session's kernel may still be starting
                for event, callback in self._restarter_callbacks():
                    self._mkm.add_restart_callback(self.kernel_id, callback, event)
            else:
                await self._launch()
            self._set_state("starting")
            await self._connect()
        except _KernelExited:
            if self._following():
                return  # attached: jupyter_server restarts it and the follower reconnects
            raise
        except Exception as exc:
            reason = f"Kernel {self.name!r} could not be started: {exc}"
            self._fail(reason)
            raise KernelError(reason) from exc
        self._set_state("running")
        self._pump()

    async def _launch(self) -> None:
        env = {**os.environ, **self._extra_env}
        if self.path:
            env["JPY_SESSION_NAME"] = self.path
        self._km = AsyncKernelManager(kernel_name=self.name)
        launch: dict[str, Any] = {"env": env}
        if self.cwd:
            launch["cwd"] = self.cwd
        await self._km.start_kernel(**launch)

    async def _connect(self) -> None:
        """Open our channels to the kernel's current process and wait until it answers."""
        km = self._km
        for trait in ("key", "signature_scheme", "packer", "unpacker"):
            setattr(self._session, trait, getattr(km.session, trait))
        client = km.client(session=self._session, context=_client_context())
        client.start_channels(shell=True, iopub=True, stdin=True, hb=False, control=False)
        conn = _Connection(client)
        self._conn = conn
        if self.attached:
            # ``ready`` is replaced by every start, so it tells a restarted process from this one.
            self._connected_ready = km.ready
        self._kernel_info = None
        conn.tasks = [
            _background(self._read(conn, conn.iopub, self._on_iopub)),
            _background(self._read(conn, conn.shell, self._on_shell)),
            _background(self._read(conn, conn.stdin, self._on_stdin)),
            _background(self._watch_process(conn)),
        ]
        try:
            await self._handshake(conn)
        except TimeoutError:
            self._drop_connection(conn, "The kernel did not answer.")
            raise KernelError(
                f"The kernel did not answer within {self.startup_timeout} s."
            ) from None

    async def _handshake(self, conn: _Connection) -> None:
        """Wait until all three channels are connected: the kernel can reach us on each.

        A kernel_info reply proves shell. Iopub messages published before our SUB socket is
        subscribed are lost, so we also wait for any iopub message. And the kernel's stdin
        ROUTER drops an ``input_request`` for a client whose connection is not complete yet;
        with ``IMMEDIATE`` set, our stdin socket turns writable exactly when it is complete.
        """
        async with asyncio.timeout(self.startup_timeout):
            while True:
                self._iopub_probe = asyncio.get_running_loop().create_future()
                try:
                    self._kernel_info = await self._shell_request("kernel_info_request", {})
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(IOPUB_HANDSHAKE_WAIT):
                            await self._iopub_probe
                        break
                finally:
                    self._iopub_probe = None
            await conn.stdin.poll(flags=zmq.POLLOUT)

    # -- the three readers ---------------------------------------------------------------------

    async def _read(
        self, conn: _Connection, socket: zmq.asyncio.Socket, handle: Callable[[Message], None]
    ) -> None:
        session = self._session
        while True:
            try:
                frames = await socket.recv_multipart()
            except zmq.ZMQError:
                if conn.open:
                    raise
                return
            try:
                _idents, frames = session.feed_identities(frames)
                msg = session.deserialize(frames)
            except Exception:
                log.warning("Dropped an unreadable message from %r", self, exc_info=True)
                continue
            try:
                handle(msg)
            except Exception:
                log.exception("Handling %s from %r failed", msg.get("msg_type"), self)

    def _on_iopub(self, msg: Message) -> None:
        current = self._current
        if current is not None and msg["parent_header"].get("msg_id") == current.msg_id:
            current._on_iopub(msg)
            if current.done:
                self._advance()
        elif self._iopub_probe is not None and not self._iopub_probe.done():
            self._iopub_probe.set_result(None)

    def _on_shell(self, msg: Message) -> None:
        parent_id = msg["parent_header"].get("msg_id")
        current = self._current
        if current is not None and parent_id == current.msg_id:
            current._on_reply(msg)
            if current.done:
                self._advance()
        else:
            waiter = self._replies.pop(parent_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(msg)

    def _on_stdin(self, msg: Message) -> None:
        current = self._current
        if (
            current is not None
            and msg["msg_type"] == "input_request"
            and msg["parent_header"].get("msg_id") == current.msg_id
        ):
            current._on_input_request(msg)

    # -- executing -----------------------------------------------------------------------------

    def execute_code(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        allow_stdin: bool = True,
        user_expressions: dict[str, str] | None = None,
    ) -> CodeExecutionEmitter:
        """Queue ``code``; iterate the returned emitter for its messages.

        A kernel that is still ``off`` is started. Raises ``KernelError`` if the kernel is
        closed, or failed and will not come back.
        """
        self._check_usable()
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": allow_stdin,
            # Halting the queue after an error is the runner's decision (halt_on_error); the
            # kernel's own abort window could also swallow our next request.
            "stop_on_error": False,
        }
        emitter = CodeExecutionEmitter(self, self._session.msg("execute_request", content))
        self._queue.append(emitter)
        if self._state == "off":
            self._begin_start()
        else:
            self._pump()
        return emitter

    def _check_usable(self) -> None:
        if self._closing:
            raise KernelError("This kernel was closed; start a new one.")
        if self._state == "failed" and not self._may_come_back():
            raise KernelError(self._error or "The kernel failed; start a new one.")

    def _may_come_back(self) -> bool:
        """Whether a failed kernel is being restarted by jupyter_server (attached mode)."""
        return self._following() and not self._gone and self.kernel_id in self._mkm

    def _following(self) -> bool:
        return self._follower is not None and not self._follower.done()

    def _pump(self) -> None:
        """Send the next queued request if none is running (the hot path: no awaits)."""
        if self._current is None and self._queue and self._state == "running":
            conn = self._conn
            assert conn is not None
            self._current = self._queue.popleft()
            self._session.send(conn.shell, self._current.request)

    def _advance(self) -> None:
        self._current = None
        self._pump()

    async def _cancel(self, emitter: CodeExecutionEmitter) -> None:
        if emitter in self._queue:
            self._queue.remove(emitter)
            emitter.cancelled = True
            emitter._finish()
        elif emitter is self._current and not emitter.done:
            emitter.cancelled = True
            await self._interrupt()

    def _send_input(self, value: str, input_request: Message) -> None:
        conn = self._conn
        if conn is None:
            raise KernelError("The kernel is not connected; the input cannot be sent.")
        reply = self._session.msg("input_reply", {"value": value}, parent=input_request["header"])
        self._session.send(conn.stdin, reply)

    def _expect_reply(self, emitter: CodeExecutionEmitter) -> None:
        """The request went idle before its reply arrived: make sure the reply still comes.

        It usually does, a moment later (shell and iopub are separate sockets). But an
        interrupt that lands after the kernel took the request and before the code started is
        caught by ipykernel outside the cell, and then no ``execute_reply`` is ever sent.
        """
        loop = asyncio.get_running_loop()
        loop.call_later(REPLY_GRACE, lambda: _background(self._confirm_reply(emitter)))

    async def _confirm_reply(self, emitter: CodeExecutionEmitter) -> None:
        if emitter is not self._current or emitter.done:
            return
        # The kernel answers shell requests in order, so once this reply is in, an execute
        # reply sent before it would be in too.
        with contextlib.suppress(KernelError):
            await self._shell_request("kernel_info_request", {})
        if emitter is self._current and not emitter.done:
            if emitter._interrupted:
                emitter._abort("Interrupted before the code started.", "KeyboardInterrupt")
            else:
                emitter._abort("The kernel finished the request without replying.", "KernelError")
            self._advance()

    def _abort_requests(self, reason: str) -> None:
        current, self._current = self._current, None
        if current is not None:
            current._abort(reason)
        while self._queue:
            self._queue.popleft()._abort(reason)

    # -- other requests ------------------------------------------------------------------------

    async def kernel_info(self) -> dict[str, Any]:
        """The kernel's ``kernel_info_reply`` content (asked once per kernel process)."""
        if self._kernel_info is None:
            await self._until_running()
            if self._kernel_info is None:
                self._kernel_info = await self._shell_request("kernel_info_request", {})
        return self._kernel_info

    async def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        """The ``complete_reply`` content for ``code`` at ``cursor_pos`` (default: the end)."""
        await self._until_running()
        pos = len(code) if cursor_pos is None else cursor_pos
        return await self._shell_request("complete_request", {"code": code, "cursor_pos": pos})

    async def introspect(
        self, code: str, cursor_pos: int | None = None, detail_level: int = 0
    ) -> dict[str, Any]:
        """The ``inspect_reply`` content (what ``?``/``??`` show) for ``code`` at ``cursor_pos``."""
        await self._until_running()
        pos = len(code) if cursor_pos is None else cursor_pos
        content = {"code": code, "cursor_pos": pos, "detail_level": detail_level}
        return await self._shell_request("inspect_request", content)

    async def _shell_request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        conn = self._conn
        if conn is None:
            raise KernelError("The kernel is not connected.")
        msg = self._session.msg(msg_type, content)
        msg_id = msg["header"]["msg_id"]
        waiter = self._replies[msg_id] = asyncio.get_running_loop().create_future()
        try:
            self._session.send(conn.shell, msg)
            reply = await waiter
        finally:
            self._replies.pop(msg_id, None)
        return reply["content"]

    async def _until_running(self) -> None:
        while True:
            if self._state == "running":
                return
            self._check_usable()
            if self._state == "off":
                self._begin_start()
            await self._state_changed.wait()

    # -- control -------------------------------------------------------------------------------

    async def signal(self, signal: str | int = "SIGINT") -> None:
        """Send a signal to the kernel; ``SIGINT`` interrupts it as its kernelspec says.

        (Interrupts by message for kernels whose ``interrupt_mode`` is ``message``.)
        """
        try:
            signum = signals.Signals[signal] if isinstance(signal, str) else signals.Signals(signal)
        except (KeyError, ValueError):
            raise ValueError(f"Unknown signal {signal!r}; use a name like 'SIGINT'.") from None
        if signum == signals.SIGINT:
            await self._interrupt()
        elif self.attached:
            await self._control(lambda: self._mkm.signal_kernel(self.kernel_id, signum))
        else:
            await self._control(lambda: self._km.signal_kernel(signum))

    async def _interrupt(self) -> None:
        if self._current is not None:
            self._current._interrupted = True
        if self.attached:
            await self._control(lambda: self._mkm.interrupt_kernel(self.kernel_id))
        else:
            await self._control(lambda: self._km.interrupt_kernel())

    async def _control(self, action: Callable[[], Any]) -> None:
        """Run a manager action (sync or async); its failures become ``KernelError``."""
        if self._km is None or self._closing:
            raise KernelError("The kernel is not running.")
        try:
            await ensure_async(action())
        except Exception as exc:
            raise KernelError(f"The kernel cannot be signalled: {exc}") from exc

    async def close(self) -> None:
        """Stop: standalone kernels shut down; attached kernels are only disconnected."""
        if self._closing:
            return
        self._closing = True
        tasks = [t for t in (self._start_task, self._follower) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._conn is not None:
            self._drop_connection(self._conn, "The kernel was closed.")
        self._abort_requests("The kernel was closed.")
        if self.attached:
            if self.kernel_id in self._mkm:
                for event, callback in self._restarter_callbacks():
                    self._mkm.remove_restart_callback(self.kernel_id, callback, event)
        elif self._km is not None and self._km.has_kernel:
            try:
                await self._km.shutdown_kernel()
            except Exception:
                log.exception("Shutting down %r failed", self)
        self._set_state("closed")

    # -- death and restarts --------------------------------------------------------------------

    async def _watch_process(self, conn: _Connection) -> None:
        exit_code = await _wait_for_exit(self._km)
        # Read at once: a restart clears the flag as soon as the new process is starting.
        intentional = self.attached and self._km.shutting_down
        await self._drain(conn)
        if intentional:
            self._kernel_exited(conn, "The kernel was restarted or shut down.", unexpected=False)
        else:
            code = "" if exit_code is None else f" (exit code {exit_code})"
            self._kernel_exited(conn, f"The kernel died unexpectedly{code}.", unexpected=True)

    async def _drain(self, conn: _Connection) -> None:
        """Let the readers take what the kernel sent before it died (often its last words).

        Bounded: each round yields once to the event loop, which hands queued messages to the
        reader tasks.
        """
        sockets = (conn.iopub, conn.shell, conn.stdin)
        for _ in range(DRAIN_ROUNDS):
            if not conn.open:
                return
            pending = any(socket.get(zmq.EVENTS) & zmq.POLLIN for socket in sockets)
            await asyncio.sleep(0)
            if not pending:
                return

    def _kernel_exited(self, conn: _Connection, reason: str, *, unexpected: bool) -> None:
        """End everything that waited on the process behind ``conn``; follow restarts."""
        if conn is not self._conn or self._closing:
            return
        self._drop_connection(conn, reason)
        if self.attached and not self._following():
            # Before the state changes, so a state callback may already queue a request.
            self._follower = _background(self._follow_restart())
        if unexpected:
            self._fail(reason)
        else:
            self._abort_requests(reason)
            self._set_state("starting")

    def _drop_connection(self, conn: _Connection, reason: str) -> None:
        conn.close()
        if conn is self._conn:
            self._conn = None
        self._kernel_info = None
        replies, self._replies = self._replies, {}
        for waiter in replies.values():
            if not waiter.done():
                waiter.set_exception(_KernelExited(reason))

    def _restarter_callbacks(self) -> list[tuple[str, Callable[[], None]]]:
        return [("restart", self._on_restarter_restart), ("dead", self._on_restarter_dead)]

    def _on_restarter_restart(self) -> None:
        """jupyter_server found the process dead and is about to restart it."""
        if self._conn is not None:
            self._kernel_exited(
                self._conn, "The kernel died; it is being restarted.", unexpected=True
            )
        self._restarter_acted.set()

    def _on_restarter_dead(self) -> None:
        """jupyter_server gave up restarting the kernel and removes it."""
        self._gone = True
        if self._conn is not None:
            self._kernel_exited(
                self._conn, "The kernel died and could not be restarted.", unexpected=True
            )
        self._restarter_acted.set()

    async def _follow_restart(self) -> None:
        """Attached mode: reconnect once jupyter_server has a new process behind the kernel id."""
        while True:
            try:
                await self._wait_for_new_process(self._connected_ready)
                self._set_state("starting")
                await self._connect()
            except _KernelExited:
                continue  # died again while we connected: wait for the next restart
            except KernelError as exc:
                self._gone = True
                self._fail(str(exc))
                return
            self._error = None
            self._set_state("running")
            self._pump()
            return

    async def _wait_for_new_process(self, stale_ready: Any) -> None:
        km = self._km
        if self._state == "failed" and not getattr(km, "autorestart", False):
            raise KernelError(f"{self._error} jupyter_server does not restart this kernel.")
        try:
            async with asyncio.timeout(self.restart_timeout):
                while True:
                    if self._gone or self.kernel_id not in self._mkm:
                        raise KernelError(
                            "The kernel of this session is gone (shut down, or it kept dying); "
                            "start a new session."
                        )
                    ready = km.ready
                    if not ready.done():
                        # ``ready`` is replaced by each shutdown and start: wait for this one,
                        # then look again.
                        with contextlib.suppress(Exception):
                            await _wait_for(ready)
                        continue
                    if (
                        ready is not stale_ready
                        and not ready.cancelled()
                        and ready.exception() is None
                        and not km.shutting_down
                        and km.has_kernel
                    ):
                        return
                    # The dead process is still the current one: the restarter acts on its
                    # next poll (every ``time_to_dead`` seconds).
                    self._restarter_acted.clear()
                    await self._restarter_acted.wait()
        except TimeoutError:
            raise KernelError(
                f"jupyter_server did not restart the kernel within {self.restart_timeout} s."
            ) from None

    def __repr__(self) -> str:
        which = f"attached {self.kernel_id}" if self.attached else (self.path or "standalone")
        return f"<JupyterKernel {self.name} {which} {self._state}>"


def kernel(name: str = "python3", path: str | None = None, **kwargs: Any) -> JupyterKernel:
    """A standalone ``JupyterKernel`` for ``name``, working in the folder of ``path``.

    ``kwargs`` go to ``JupyterKernel`` (``cwd``, ``env``, ``startup_timeout``).
    """
    return JupyterKernel(name=name, path=path, **kwargs)


# -- helpers -------------------------------------------------------------------------------------


_context: zmq.asyncio.Context | None = None


def _client_context() -> zmq.asyncio.Context:
    """The ZMQ context of our kernel clients: one I/O thread for all, ``IMMEDIATE`` sockets.

    ``IMMEDIATE`` queues outgoing messages only on completed connections, which makes "the
    socket is writable" mean "connected" (see ``_handshake``). It is set on our own context
    so the kernel managers' sockets keep their defaults.
    """
    global _context
    if _context is None or _context.closed:
        _context = zmq.asyncio.Context()
        _context.setsockopt(zmq.IMMEDIATE, 1)
    return _context


def _background(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task whose failure is logged even if nobody awaits it."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        if not isinstance(exc, KernelError):  # those are reported through the state
            log.error("Kernel task failed", exc_info=exc)


async def _wait_for(future: Any) -> None:
    """Await a kernel manager's ``ready`` future without cancelling it if we are cancelled."""
    if isinstance(future, ConcurrentFuture):
        future = asyncio.wrap_future(future)
    await asyncio.shield(future)


async def _wait_for_exit(km: Any) -> int | None:
    """Return when the kernel process exits, with its exit code if known.

    A pidfd becomes readable when the process exits, so the event loop learns of a death at
    once without polling. Only local processes have one; others are polled with ``is_alive()``.
    """
    process = getattr(km.provisioner, "process", None)
    pidfd = None
    if process is not None and hasattr(os, "pidfd_open") and process.poll() is None:
        # Safe from pid reuse: the kernel is our child and stays a zombie until reaped by poll().
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(process.pid)
    if pidfd is not None:
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    else:
        while await km.is_alive():
            await asyncio.sleep(LIVENESS_POLL_INTERVAL)
    return process.poll() if process is not None else None
