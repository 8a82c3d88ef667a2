"""One Jupyter kernel driven directly over ZMQ: start or attach, execute in order, observe.

``JupyterKernel`` is what a notebook's runner talks to. It either owns its kernel (standalone,
``kernel(name, path)``: an ``AsyncKernelManager`` started in the notebook's folder) or drives the
kernel of a Jupyter session that jupyter_server manages (``JupyterKernel.attach``); then
interrupts and restarts go through jupyter_server and closing only disconnects.

The parts, one module each: ``channels`` (our connection to the process: non-blocking sends,
one reader per channel), ``emitter`` (the execute queue and the emitter of each request),
``process`` (noticing the process exit at once; following jupyter_server's restarts). This
module holds the kernel's state and ties them together:

* A kernel that dies at any moment is reported, never waited on: its requests end with a
  ``DeadKernelError``, and whoever waits for it to start (``spawn``, ``kernel_info``...) gets a
  ``KernelError``. Attached kernels are then followed to the process jupyter_server restarts.
* An interrupt reaches the process only once the kernel has answered us: ipykernel dies of a
  SIGINT while it is still importing (a pooled kernel claimed while booting, a restart under
  way). Before that, the requests waiting for the kernel end as interrupted instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal as signals
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from jupyter_client.kernelspec import NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.multikernelmanager import MultiKernelManager
from jupyter_client.session import Session
from jupyter_core.utils import ensure_async
from tornado.web import HTTPError

from ..errors import KernelError
from ..errors_seen import count_error
from .activity_watch import SharedActivityWatch
from .channels import Connection, ConnectionClosed, Replies, background
from .comms import CommSender, IopubObserver
from .emitter import DEAD_KERNEL_ENAME as DEAD_KERNEL_ENAME
from .emitter import CodeExecutionEmitter as CodeExecutionEmitter
from .emitter import ExecutionQueue
from .gateway import GatewayConnection, RemoteRestarts, gateway_kernel
from .process import Ready, RestarterWatch, wait_for, wait_for_exit

log = logging.getLogger(__name__)

#: how a kernel fails to start without a bug of ours: it cannot be launched (OSError,
#: jupyter_client's RuntimeError, NoSuchKernel), does not answer in time (TimeoutError), dies
#: or is refused (KernelError), or jupyter_server says no (HTTPError)
START_ERRORS = (OSError, RuntimeError, TimeoutError, NoSuchKernel, KernelError, HTTPError)

KernelState = Literal["off", "spawning", "starting", "running", "closed", "failed"]
StateCallback = Callable[[KernelState], None]


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
        self._mkm: MultiKernelManager | None = None  # attached: jupyter_server's kernel manager
        self._km: AsyncKernelManager | None = None
        self._restarts: RestarterWatch | None = None  # attached mode
        # Our own session id, so our shell/stdin identities never collide with another client
        # of the same kernel; the key is copied from the kernel's manager when connecting.
        self._session = Session()
        self._state: KernelState = "off"
        self._error: str | None = None
        self._deaths = 0  # unexpected exits so far: a waiter that sees this change gives up
        self._state_callbacks: list[StateCallback] = []
        self._state_changed = asyncio.Event()
        self._queue = ExecutionQueue(self, self._session)
        #: ``comm_msg`` / ``comm_info_request`` to the kernel (widgets)
        self.comms = CommSender(lambda: self.connection)
        self._conn: Replies | None = None
        self._remote_restarts: RemoteRestarts | None = None
        self._kernel_info: dict[str, Any] | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._connected_ready: Ready | None = None
        self._closing = False

    @classmethod
    def attach(cls, multi_kernel_manager: MultiKernelManager, kernel_id: str) -> JupyterKernel:
        """Drive the kernel ``kernel_id`` of jupyter_server's ``multi_kernel_manager``.

        ``spawn()`` (or the first request) connects; ``close()`` only disconnects, the kernel
        stays with its session.
        """
        if kernel_id not in multi_kernel_manager:
            raise KernelError(f"jupyter_server has no kernel {kernel_id}; start one first.")
        km = multi_kernel_manager.get_kernel(kernel_id)
        if not isinstance(km, AsyncKernelManager):  # jupyter_server's are
            raise KernelError(f"the kernel {kernel_id} is not run by an async kernel manager")
        self = cls(name=km.kernel_name)
        self._mkm = multi_kernel_manager
        self._km = km
        self._restarts = RestarterWatch(multi_kernel_manager, kernel_id, self._on_restarter_death)
        self.kernel_id = kernel_id
        if gateway_kernel(km):
            server = getattr(multi_kernel_manager, "parent", None)
            event_logger = getattr(server, "event_logger", None)
            self._remote_restarts = RemoteRestarts(event_logger, kernel_id, self._on_remote_action)
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
    def remote(self) -> bool:
        """Attached to a kernel on a gateway: no local process, one websocket."""
        return self._remote_restarts is not None

    @property
    def attached(self) -> bool:
        return self._mkm is not None

    @property
    def connection(self) -> Replies | None:
        """Our connection to the kernel's process while it is running, else None."""
        return self._conn if self._state == "running" else None

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(state)`` on every state change; returns a function that unsubscribes."""
        self._state_callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._state_callbacks.remove(callback)

        return unsubscribe

    def observe_iopub(self, observer: IopubObserver) -> Callable[[], None]:
        """Give ``observer`` every iopub message but ``status`` (comms, outputs of others'
        requests, outputs of ours), before the request it belongs to sees it; the observer
        may keep it from that request. Returns a function that removes the observer."""
        return self._queue.observers.add(observer)

    @property
    def session_id(self) -> str:
        """Our session: messages whose parent has it were caused by us."""
        return self._session.session

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
                except Exception as e:  # (the other callbacks still hear of it)
                    what = f"state callback {callback!r} of {self!r}"
                    count_error("kernel.state_callback", e, what, logger=log)

    def _fail(self, reason: str) -> None:
        self._error = reason
        self._queue.abort_all(reason)
        self._set_state("failed")

    # -- starting ------------------------------------------------------------------------------

    async def spawn(self) -> None:
        """Start the kernel (attached: connect to it) and wait until it answers.

        Raises ``KernelError`` if it fails, or dies, before it answered.
        """
        await self._until_running()

    async def _until_running(self) -> None:
        deaths = self._deaths
        while True:
            if self._state == "running":
                return
            if self._deaths != deaths:
                raise KernelError(self._error or "The kernel died before it answered.")
            self._check_usable()
            if self._state == "off":
                self._begin_start()
            await self._state_changed.wait()

    def _begin_start(self) -> None:
        if self._start_task is None:
            self._start_task = background(self._start())

    async def _start(self) -> None:
        self._set_state("spawning")
        try:
            if self._remote_restarts is not None:
                # the gateway answered the start already: a remote kernel has no ``ready``
                self._remote_restarts.subscribe()
            elif self.attached:
                await wait_for(self._manager().ready)  # the session's kernel may be starting
                assert self._restarts is not None
                self._restarts.subscribe()
            else:
                await self._launch()
            self._set_state("starting")
            await self._connect()
        except ConnectionClosed:
            # The process exited while we connected: already reported (``_kernel_exited``);
            # attached kernels come back through the follower.
            return
        except Exception as exc:  # (re-raised as a KernelError: the caller shows it)
            if not isinstance(exc, START_ERRORS):  # a bug of ours: counted, logged
                count_error("kernel.start", exc, f"starting {self!r}", logger=log)
            reason = f"Kernel {self.name!r} could not be started: {exc}"
            self._fail(reason)
            raise KernelError(reason) from exc
        self._set_state("running")
        self._queue.pump()

    async def _launch(self) -> None:
        env = {**os.environ, **self._extra_env}
        if self.path:
            env["JPY_SESSION_NAME"] = self.path
        km = self._km = AsyncKernelManager(kernel_name=self.name)
        launch: dict[str, Any] = {"env": env}
        if self.cwd:
            launch["cwd"] = self.cwd
        await km.start_kernel(**launch)

    async def _connect(self) -> None:
        """Open our channels to the kernel's current process and wait until it answers."""
        km = self._manager()
        conn: Replies
        if self.remote:
            assert self.kernel_id is not None
            remote = GatewayConnection(self.kernel_id, self._session, self._queue)
            self._conn = conn = remote
            await remote.connect(self.startup_timeout)
            conn.tasks.append(background(self._watch_remote(remote)))
        else:
            for trait in ("key", "signature_scheme", "packer", "unpacker"):
                setattr(self._session, trait, getattr(km.session, trait))
            local = Connection(km, self._session, self._queue)
            self._conn = conn = local
            if self.attached:
                # ``ready`` is replaced by every start: it tells a restarted process from this one
                self._connected_ready = km.ready
            conn.tasks.append(background(self._watch_process(local)))
        self._kernel_info = None
        try:
            self._kernel_info = await conn.handshake(self.startup_timeout)
        except TimeoutError:
            self._drop_connection(conn, "The kernel did not answer.")
            raise KernelError(
                f"The kernel did not answer within {self.startup_timeout} s."
            ) from None
        except asyncio.CancelledError:
            if conn.open:
                raise
            # Closing the sockets cancelled the handshake's wait: the process exited.
            raise ConnectionClosed("The kernel exited while we connected.") from None
        if isinstance(self._mkm, SharedActivityWatch) and self.kernel_id is not None:
            # every iopub message of the kernel comes here now: jupyter_server's own watcher
            # of it would only decode each again
            conn.record_activity = self._mkm.share_activity(self.kernel_id)

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
        emitter = self._queue.submit(content)
        if self._state == "off":
            self._begin_start()
        return emitter

    def _check_usable(self) -> None:
        if self._closing:
            raise KernelError("This kernel was closed; start a new one.")
        if self._state == "failed" and not self._may_come_back():
            raise KernelError(self._error or "The kernel failed; start a new one.")

    def _may_come_back(self) -> bool:
        """Whether a failed kernel is being restarted by jupyter_server (attached mode)."""
        return self._following() and self._restarts is not None and self._restarts.kernel_exists

    def _following(self) -> bool:
        return self._follower is not None and not self._follower.done()

    # -- other requests ------------------------------------------------------------------------

    async def kernel_info(self) -> dict[str, Any]:
        """The kernel's ``kernel_info_reply`` content (asked once per kernel process)."""
        if self._kernel_info is None:
            await self._until_running()
            if self._kernel_info is None:
                self._kernel_info = await self._request("kernel_info_request", {})
        return self._kernel_info

    async def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        """The ``complete_reply`` content for ``code`` at ``cursor_pos`` (default: the end)."""
        await self._until_running()
        pos = len(code) if cursor_pos is None else cursor_pos
        return await self._request("complete_request", {"code": code, "cursor_pos": pos})

    async def introspect(
        self, code: str, cursor_pos: int | None = None, detail_level: int = 0
    ) -> dict[str, Any]:
        """The ``inspect_reply`` content (what ``?``/``??`` show) for ``code`` at ``cursor_pos``."""
        await self._until_running()
        pos = len(code) if cursor_pos is None else cursor_pos
        content = {"code": code, "cursor_pos": pos, "detail_level": detail_level}
        return await self._request("inspect_request", content)

    async def _request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        conn = self._conn
        if conn is None:
            raise KernelError("The kernel is not connected.")
        return await conn.request(msg_type, content)

    # -- control -------------------------------------------------------------------------------

    async def signal(self, signal: str | int = "SIGINT") -> None:
        """Send a signal to the kernel; ``SIGINT`` interrupts it (see ``interrupt``)."""
        try:
            signum = signals.Signals[signal] if isinstance(signal, str) else signals.Signals(signal)
        except (KeyError, ValueError):
            raise ValueError(f"Unknown signal {signal!r}; use a name like 'SIGINT'.") from None
        if signum == signals.SIGINT:
            await self.interrupt()
        elif self._mkm is not None and self.kernel_id is not None:
            mkm, kernel_id = self._mkm, self.kernel_id
            await self._control(lambda: mkm.signal_kernel(kernel_id, signum))
        else:
            await self._control(lambda: self._manager().signal_kernel(signum))

    async def interrupt(self) -> None:
        """Interrupt the running request, as the kernelspec says (SIGINT, or a message).

        Until the kernel has answered us, nothing of ours runs in it and a SIGINT could kill it
        while it imports: the requests waiting for it end as interrupted instead.
        """
        if self._state != "running":
            self._queue.interrupt_waiting("Interrupted before the kernel was ready.")
            return
        self._queue.mark_interrupted()
        if self._mkm is not None and self.kernel_id is not None:
            mkm, kernel_id = self._mkm, self.kernel_id
            await self._control(lambda: mkm.interrupt_kernel(kernel_id))
        else:
            await self._control(lambda: self._manager().interrupt_kernel())

    def _manager(self) -> AsyncKernelManager:
        if self._km is None:
            raise KernelError("The kernel is not running.")
        return self._km

    async def _control(self, action: Callable[[], Awaitable[None] | None]) -> None:
        """Run a manager action (sync or async); its failures become ``KernelError``."""
        if self._km is None or self._closing:
            raise KernelError("The kernel is not running.")
        try:
            await ensure_async(action())
        except (OSError, RuntimeError, KeyError, HTTPError) as exc:  # gone, or not ours any more
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
        self._queue.abort_all("The kernel was closed.")
        if self._remote_restarts is not None:
            self._remote_restarts.unsubscribe()
        elif self._restarts is not None:
            self._restarts.unsubscribe()
        if self._restarts is None and self._km is not None and self._km.has_kernel:
            try:
                await self._km.shutdown_kernel()
            except (OSError, RuntimeError, TimeoutError) as e:  # it went away by itself
                log.warning("Shutting down %r failed: %s", self, e)
            except Exception as e:  # a bug of ours: closing goes on
                count_error("kernel.shutdown", e, f"shutting down {self!r}", logger=log)
        self._set_state("closed")

    # -- death and restarts --------------------------------------------------------------------

    async def _watch_process(self, conn: Connection) -> None:
        km = self._manager()
        exit_code = await wait_for_exit(km)
        # Read at once: a restart clears the flag as soon as the new process is starting.
        intentional = self.attached and km.shutting_down
        await conn.drain()
        if intentional:
            self._kernel_exited(conn, "The kernel was restarted or shut down.", unexpected=False)
        else:
            code = "" if exit_code is None else f" (exit code {exit_code})"
            self._kernel_exited(conn, f"The kernel died unexpectedly{code}.", unexpected=True)

    async def _watch_remote(self, conn: GatewayConnection) -> None:
        reason = await conn.ended
        if conn.open:  # not closed by us: the kernel died, or the gateway went away
            self._kernel_exited(conn, reason, unexpected=True)

    def _on_remote_action(self, action: str) -> None:
        """A restart or shutdown of our gateway kernel went through jupyter_server."""
        conn = self._conn
        if conn is None:
            return
        if action == "shutdown":
            assert self._restarts is not None
            self._restarts.gone = True
            self._kernel_exited(conn, "The kernel was shut down.", unexpected=True)
        else:
            self._kernel_exited(conn, "The kernel was restarted.", unexpected=False)

    def _on_restarter_death(self, reason: str) -> None:
        if self._conn is not None:
            self._kernel_exited(self._conn, reason, unexpected=True)

    def _kernel_exited(self, conn: Replies, reason: str, *, unexpected: bool) -> None:
        """End everything that waited on the process behind ``conn``; follow restarts."""
        if conn is not self._conn or self._closing:
            return
        self._drop_connection(conn, reason)
        if self.attached and not self._following():
            # Before the state changes, so a state callback may already queue a request.
            self._follower = background(self._follow_restart())
        if unexpected:
            self._deaths += 1
            self._fail(reason)
        else:
            self._queue.abort_all(reason)
            self._set_state("starting")

    def _drop_connection(self, conn: Replies, reason: str) -> None:
        conn.close(reason)
        if conn.record_activity is not None:
            conn.record_activity = None
            if isinstance(self._mkm, SharedActivityWatch) and self.kernel_id is not None:
                self._mkm.unshare_activity(self.kernel_id)
        if conn is self._conn:
            self._conn = None
        self._kernel_info = None

    async def _follow_restart(self) -> None:
        """Attached mode: reconnect once jupyter_server has a new process behind the kernel id."""
        assert self._restarts is not None
        while True:
            try:
                if self.remote:
                    mkm, kernel_id = self._mkm, self.kernel_id
                    if (
                        self._restarts.gone
                        or mkm is None
                        or kernel_id is None
                        or kernel_id not in mkm
                    ):
                        raise KernelError(f"{self._error} The gateway kernel is gone.")
                    # the gateway restarts its kernels itself: our shell request waits for it
                elif self._state == "failed" and not getattr(self._km, "autorestart", False):
                    raise KernelError(f"{self._error} jupyter_server does not restart this kernel.")
                else:
                    await self._restarts.new_process(self._connected_ready, self.restart_timeout)
                self._set_state("starting")
                await self._connect()
            except ConnectionClosed:
                continue  # died again while we connected: wait for the next restart
            except KernelError as exc:
                self._restarts.gone = True
                self._fail(str(exc))
                return
            self._error = None
            self._set_state("running")
            self._queue.pump()
            return

    def __repr__(self) -> str:
        which = f"attached {self.kernel_id}" if self.attached else (self.path or "standalone")
        return f"<JupyterKernel {self.name} {which} {self._state}>"


def kernel(name: str = "python3", path: str | None = None, **kwargs: Any) -> JupyterKernel:
    """A standalone ``JupyterKernel`` for ``name``, working in the folder of ``path``.

    ``kwargs`` go to ``JupyterKernel`` (``cwd``, ``env``, ``startup_timeout``).
    """
    return JupyterKernel(name=name, path=path, **kwargs)


__all__ = [
    "DEAD_KERNEL_ENAME",
    "CodeExecutionEmitter",
    "JupyterKernel",
    "KernelState",
    "kernel",
]
