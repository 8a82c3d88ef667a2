"""``SessionKernels``: a notebook's kernel is the kernel of its Jupyter session.

So the server runs cells on the very kernel JupyterLab shows (same variables, same status), and
a notebook with no session gets one, for its ``settings.kernel``, through jupyter_server's own
SessionManager (which takes a pre-spawned kernel from the pool).

A session this extension started (for a notebook used only through the REST API or the Python
client) is its to end: when the notebook closes, the session and its kernel are shut down unless
someone uses the kernel (a kernel websocket is connected, e.g. JupyterLab opened the notebook
and joined that session). Sessions that JupyterLab started are never shut down here.
"""

from __future__ import annotations

import logging
import posixpath
from typing import TYPE_CHECKING, Any

from jupyter_server.services.sessions.sessionmanager import KernelName, ModelName
from jupyter_server.utils import ensure_async
from tornado.web import HTTPError

from ..errors import KernelError
from ..errors_seen import count_error
from ..kernels.kernel import JupyterKernel

if TYPE_CHECKING:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_server.serverapp import ServerApp
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
    from jupyter_server.services.sessions.sessionmanager import SessionManager

log = logging.getLogger(__name__)

#: a session model, as jupyter_server's SessionManager gives it
Session = dict[str, Any]


class SessionKernels:
    """Finds or starts the session kernel of a notebook and attaches a ``JupyterKernel``."""

    def __init__(self, serverapp: ServerApp) -> None:
        self.serverapp = serverapp
        self._attached: dict[str, JupyterKernel] = {}  # kernel id -> wrapper
        self._started: dict[str, str] = {}  # session id -> notebook path, sessions we started

    @property
    def kernel_manager(self) -> MappingKernelManager:
        return self.serverapp.kernel_manager

    @property
    def session_manager(self) -> SessionManager:
        manager: SessionManager = self.serverapp.session_manager
        return manager

    @property
    def kernel_specs(self) -> KernelSpecManager:
        specs = self.serverapp.kernel_spec_manager
        if specs is None:
            raise KernelError("this server has no kernelspecs")
        return specs

    async def session_for(self, path: str) -> Session | None:
        sessions: list[Session] = await self.session_manager.list_sessions()
        for session in sessions:
            if session.get("path") == path and session.get("kernel"):
                return session
        return None

    async def kernel_for(
        self, path: str, kernel_name: str | None, prefer: str | None = None
    ) -> JupyterKernel:
        """The attached kernel for the notebook at ``path`` (its session's, or a new one)."""
        kernel_id = prefer if prefer and prefer in self.kernel_manager else None
        if kernel_id is None:
            session = await self.session_for(path)
            if session is None:
                session = await self.start_session(path, kernel_name)
            kernel_id = session["kernel"]["id"]
        kernel = self._attached.get(kernel_id)
        if (
            kernel is None
            or kernel.state == "closed"
            or (kernel.state == "failed" and kernel_id not in self.kernel_manager)
        ):
            kernel = JupyterKernel.attach(self.kernel_manager, kernel_id)
            self._attached[kernel_id] = kernel
        return kernel

    async def start_session(self, path: str, kernel_name: str | None) -> Session:
        name = kernel_name or self.kernel_manager.default_kernel_name
        if name not in await ensure_async(self.kernel_specs.get_all_specs()):
            raise KernelError(f"no kernel named {name!r} is installed; choose another kernel")
        log.info("starting a %s session for %s", name, path)
        session: Session = await self.session_manager.create_session(
            path=path,
            name=ModelName(posixpath.basename(path)),
            type="notebook",
            kernel_name=KernelName(name),
        )
        self._started[session["id"]] = path
        return session

    async def release(self, path: str) -> None:
        """The notebook at ``path`` closed: end the sessions started for it that nobody uses."""
        for session_id, started_for in list(self._started.items()):
            try:
                session: Session = await self.session_manager.get_session(session_id=session_id)
            except HTTPError:  # 404: deleted meanwhile (JupyterLab, the REST API)
                self._started.pop(session_id, None)
                continue
            if path not in (started_for, session.get("path")):
                continue
            kernel_id = (session.get("kernel") or {}).get("id")
            if await self._in_use(kernel_id):
                continue  # someone is connected to the kernel: it is theirs now
            self._started.pop(session_id, None)
            log.info("shutting down the kernel started for %s: the notebook closed", path)
            kernel = self._attached.pop(kernel_id, None) if kernel_id else None
            if kernel is not None:
                await kernel.close()
            await self.session_manager.delete_session(session_id)

    async def change_kernel(self, path: str, kernel_name: str) -> Session:
        """Give the notebook's session a new kernel of ``kernel_name`` (as JupyterLab does)."""
        specs = await ensure_async(self.kernel_specs.get_all_specs())
        if kernel_name not in specs:
            raise KernelError(f"no kernel named {kernel_name!r} is installed")
        session = await self.session_for(path)
        if session is None:
            return await self.start_session(path, kernel_name)
        old_id = session["kernel"]["id"]
        manager = self.session_manager
        kernel_id = await manager.start_kernel_for_session(
            session["id"],
            path=path,
            name=session.get("name"),
            type="notebook",
            kernel_name=KernelName(kernel_name),
        )
        await manager.update_session(session["id"], kernel_id=kernel_id)
        old = self._attached.pop(old_id, None)
        if old is not None:
            await old.close()
        await ensure_async(self.kernel_manager.shutdown_kernel(old_id))
        changed: Session = await manager.get_session(session_id=session["id"])
        return changed

    async def _in_use(self, kernel_id: str | None) -> bool:
        if not kernel_id or kernel_id not in self.kernel_manager:
            return False
        # a gateway's kernel manager asks the gateway for the model: a coroutine there
        model = await ensure_async(self.kernel_manager.kernel_model(kernel_id))
        return bool(model.get("connections", 0))

    def kernelspec(self, name: str) -> dict[str, Any]:
        spec = self.kernel_specs.get_kernel_spec(name)
        return {"name": name, "display_name": spec.display_name, "language": spec.language}

    async def close(self) -> None:
        kernels, self._attached = list(self._attached.values()), {}
        for kernel in kernels:
            try:
                await kernel.close()
            except Exception as e:  # (the server is stopping: the other kernels close too)
                count_error("sessions.close", e, f"closing {kernel!r}", logger=log)
