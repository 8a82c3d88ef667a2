"""The Jupyter Server extension: its services (the composition root) and routes.

Its settings are in ``config.py``.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any

from traitlets import TraitError

from ._version import __version__
from .config import CocalcSyncConfig
from .heap import collect_young_objects_less_often, freeze_startup_objects, stop_releasing
from .logs import log_through
from .worker_threads import release_workers_at_exit

if TYPE_CHECKING:
    from jupyter_events import EventLogger
    from jupyter_server.serverapp import ServerApp
    from tornado.routing import RuleRouter
    from tornado.web import Application

    from .outputs.handler import OutputLimits
    from .stateless import StatelessExecutor


class CocalcSync(CocalcSyncConfig):
    """CoCalc's notebook backend for Jupyter: server-owned notebooks, server-side execution."""

    name = "jupyter_cocalc_sync"
    app_name = "jupyter-cocalc-sync"
    description = __doc__ or ""
    load_other_extensions = True

    @property
    def server(self) -> ServerApp:
        """The server this extension is loaded in (linked before its settings are made)."""
        if self.serverapp is None:
            raise RuntimeError("jupyter-cocalc-sync is not linked to a server yet")
        return self.serverapp

    # -- linking ----------------------------------------------------------------------------

    def _link_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        try:
            super()._link_jupyter_server_extension(serverapp)
        except (TraitError, ValueError) as e:
            # jupyter_server would log "error linking extension" and start without the
            # extension half set up (defaults used, the kernel pool off): the server stops
            # instead, naming the setting, as it does for an invalid KernelPool value
            message = f"invalid CocalcSync configuration: {e}"
            serverapp.log.critical("%s", message)
            raise SystemExit(f"jupyter-cocalc-sync: {message}") from e
        log_through(serverapp.log)
        # jupyter_server reads only ``jpserver_extensions`` from the jupyter_server_config.d
        # file that installing this package adds, so the pool-aware kernel manager and the
        # TCP_NODELAY kernel websocket are set here, before the server creates them — unless
        # the user configured others.
        from jupyter_server.gateway.gateway_client import GatewayClient

        from .kernels.gateway_websocket import BinaryGatewayWebSocketConnection
        from .pool.manager import PoolingKernelManager
        from .pool.websocket import KernelChannelsConnection

        chosen = serverapp.config.get("ServerApp", {})
        # the server creates the same singleton later (``ServerApp.gateway_config``)
        gateway = GatewayClient.instance(parent=serverapp, log=serverapp.log)
        if gateway.gateway_enabled:
            # jupyter_server's defaults are then its gateway classes, which must stay together
            # (its gateway session manager accepts only its gateway kernel manager); kernels
            # are the gateway's to start, so there is no pool to put in front of them. Only
            # its tab relay is replaced: the stock one breaks messages with buffers.
            serverapp.log.info(
                "Kernels run on the gateway at %s: the kernel pool is off (a gateway starts "
                "its kernels itself, in the folder and with the environment it is asked for at "
                "start; a pre-started remote kernel cannot be moved to a notebook's folder).",
                gateway.url,
            )
            if "kernel_websocket_connection_class" not in chosen:
                serverapp.kernel_websocket_connection_class = BinaryGatewayWebSocketConnection
            return
        if "kernel_manager_class" not in chosen:
            serverapp.kernel_manager_class = PoolingKernelManager
        if "kernel_websocket_connection_class" not in chosen:
            serverapp.kernel_websocket_connection_class = KernelChannelsConnection

    # -- services ---------------------------------------------------------------------------

    def initialize_settings(self) -> None:
        from .assignments.service import AssignmentService
        from .documents.manager import DocumentManager
        from .documents.notebook import DocumentSettings
        from .documents.text import FileRooms
        from .errors import StoreInUseError, StoreLocationError
        from .execution.activity import UsageSettings
        from .execution.activity_clock import ActivityClock
        from .execution.introspection import KernelQueries
        from .execution.open_notebook import NotebookFactory, NotebookParts
        from .execution.requests import ExecutionRequests
        from .execution.service import ExecutionService
        from .execution.sessions import SessionKernels
        from .export.exporter import NotebookExporter
        from .handlers.rooms import RoomConnections
        from .handlers.services import SETTING as SERVICES_SETTING
        from .handlers.services import RequestLimits, Services
        from .history.events import ForkEvents
        from .history.service import HistoryService
        from .outputs.blobs import BlobStore
        from .outputs.formats import OutputFormats
        from .outputs.handler import OutputLimits
        from .outputs.imported import FileOutputImporter
        from .outputs.overflow import MoreOutputStore
        from .paths import check_api_path
        from .rooms.registry import GlobalAwareness, RoomRegistry
        from .store import ChangeLog
        from .store.history import DAY, HistorySquasher, Retention
        from .store.opening import open_store
        from .store.projections import ProjectionLog

        serverapp = self.server
        contents_manager = serverapp.contents_manager
        try:
            self.store = open_store(
                store_path=self.store_path,
                store_url=self.store_url,
                on_network_filesystem=(
                    "refuse" if self.store_on_network_filesystem == "refuse" else "rollback-journal"
                ),
                lock_wait=self.store_lock_wait,
            )
        except (StoreInUseError, StoreLocationError) as e:
            # jupyter_server would start without the extension, and JupyterLab would then
            # edit the same files without it: the server stops instead
            self.log.critical("%s", e)
            raise SystemExit(f"jupyter-cocalc-sync: {e}") from e
        if self.store.warning is not None:
            self.log.warning("%s", self.store.warning)
        self.worker = self.store.worker
        self.changelog = ChangeLog(self.worker, snapshot_interval=self.snapshot_interval)
        self.changelog.open_blocking()
        ProjectionLog(self.changelog).open_blocking()
        self.history = HistorySquasher(
            self.changelog,
            Retention(
                keep_all=self.history_keep_all_days * DAY,
                keep_hourly=self.history_keep_hourly_days * DAY,
            ),
        )
        self.blobs = BlobStore(self.worker, threshold=self.blob_threshold)
        self.blobs.open_blocking()
        self.overflow = MoreOutputStore(self.worker, max_bytes=self.max_more_output_bytes)
        self.overflow.open_blocking()
        formats = OutputFormats(
            self.blobs,
            self.overflow,
            base_url=serverapp.base_url,
            inline_more_output=self.inline_more_output_on_save,
        )
        limits = OutputLimits(self.max_output_length, self.max_output_messages)
        self.kernels = SessionKernels(serverapp)
        self.activity = ActivityClock(serverapp.web_app.settings, self.activity_interval)
        #: the server's entries in JupyterLab's collaborators panel (one per notebook kernel)
        self.global_awareness = GlobalAwareness()
        #: builds every open notebook (document, broadcast, runner, widgets, activity)
        self.notebooks = NotebookFactory(
            NotebookParts(
                changelog=self.changelog,
                contents_manager=contents_manager,
                kernels=self.kernels,
                limits=limits,
                settings=DocumentSettings(
                    autosave_delay=self.autosave_delay, file_poll_interval=self.file_poll_interval
                ),
                hooks=formats.for_document,
                outputs=FileOutputImporter(limits, self.blobs, self.overflow),
                blobs=self.blobs,
                overflow=self.overflow,
                history=self.history,
                usage=UsageSettings(self.kernel_usage_interval, self.kernel_usage_idle_interval),
                work_tracker=self.activity,
                panel=self.global_awareness,
            )
        )
        self.documents = DocumentManager(
            contents_manager=contents_manager,
            file_id_manager=lambda: serverapp.web_app.settings["file_id_manager"],
            cleanup_delay=self.document_cleanup_delay,
            open_notebook=self.notebooks.open,
        )
        self.execution = ExecutionService(self.documents, self.notebooks, self.overflow)
        self.kernel_queries = KernelQueries(self.execution)
        self.file_rooms = FileRooms(
            contents_manager,
            save_delay=self.autosave_delay,
            cleanup_delay=self.document_cleanup_delay,
            poll_interval=self.file_poll_interval,
        )
        event_logger = serverapp.event_logger
        self.history_service = HistoryService(
            self.documents,
            self.notebooks,
            check_path=lambda path: check_api_path(serverapp.root_dir, path),
            cleanup_delay=self.document_cleanup_delay,
            burst_seconds=self.timeline_burst_seconds,
            emit=ForkEvents(event_logger) if event_logger is not None else None,
        )
        self.rooms = RoomRegistry(
            self.documents,
            self.notebooks,
            self.file_rooms,
            check_path=lambda path: check_api_path(serverapp.root_dir, path),
            awareness=self.global_awareness,
            history=self.history_service,
        )
        self.exporter = NotebookExporter()
        self.stateless = self._stateless_executor(limits)
        self.assignments = AssignmentService(self.documents, contents_manager)
        self.room_connections = RoomConnections()
        #: the extension itself, for tests and debugging; handlers get ``Services`` only
        self.settings["cocalc_sync"] = self
        self.settings[SERVICES_SETTING] = Services(
            documents=self.documents,
            file_rooms=self.file_rooms,
            rooms=self.rooms,
            connections=self.room_connections,
            execution=self.execution,
            execution_requests=ExecutionRequests(self.documents, self.execution),
            kernel_queries=self.kernel_queries,
            exporter=self.exporter,
            stateless=self.stateless,
            assignments=self.assignments,
            history=self.history_service,
            blobs=self.blobs,
            activity=self.activity,
            limits=RequestLimits(
                max_body_bytes=self.max_body_bytes,
                max_frame_bytes=self.max_frame_bytes,
                send_queue_bytes=self.send_queue_bytes,
            ),
            status=self.status,
            file_exists=self.file_exists,
        )
        if self.ydoc_extension_api:
            self._provide_ydoc_api()
        if serverapp.event_logger is not None:
            serverapp.event_logger.add_listener(
                schema_id=CONTENTS_EVENTS, listener=self._on_contents_event
            )
        self.log.info("jupyter-cocalc-sync %s: store %s", __version__, self.worker.describe())

    def _provide_ydoc_api(self) -> None:
        from .ydoc_api.events import emit_room_events
        from .ydoc_api.extension import ExtensionRooms, YDocExtensionAPI
        from .ydoc_api.registration import provide

        self.extension_rooms = ExtensionRooms(
            self.rooms, self.documents, idle_timeout=self.document_cleanup_delay
        )
        api = YDocExtensionAPI(self.extension_rooms, self.documents.file_id)
        if not provide(self.server, self.settings, api):
            self.log.warning(
                "jupyter_server_ydoc is enabled too: extensions get its rooms, not this "
                "server's (disable it: jupyter server extension disable jupyter_server_ydoc)"
            )
            return
        if self.server.event_logger is not None:
            emit_room_events(self.server.event_logger, self.file_rooms)

    def _stateless_executor(self, limits: OutputLimits) -> StatelessExecutor:
        from .stateless import StatelessExecutor
        from .stateless.cache import ResultCache
        from .stateless.pool import FreshKernelPool
        from .stateless.service import StatelessSettings

        for name in ("stateless_timeout", "stateless_max_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CocalcSync.{name} must be > 0 seconds")
        cache = ResultCache(self.worker, ttl=self.stateless_cache_ttl)
        cache.open_blocking()
        settings = StatelessSettings(
            root_dir=self.server.root_dir,
            timeout_s=self.stateless_timeout,
            max_timeout_s=self.stateless_max_timeout,
            max_concurrent=self.stateless_max_concurrent,
            limits=limits,
        )
        pool = FreshKernelPool(self.stateless_pool_size)
        specs = self.server.kernel_spec_manager
        if specs is None:
            raise ValueError("the server has no kernelspec manager")
        return StatelessExecutor(settings, pool, cache, specs)

    async def _on_contents_event(
        self, logger: EventLogger, schema_id: str, data: dict[str, Any]
    ) -> None:
        # renames and deletions through the server; polling catches the others
        action, path = data.get("action"), data.get("path")
        if action == "rename" and data.get("source_path") and path:
            self.documents.renamed(data["source_path"], path)
            self.file_rooms.renamed(data["source_path"], path)
        elif action == "delete" and path:
            self.documents.deleted(path)
            self.file_rooms.deleted(path)

    def status(self) -> dict[str, Any]:
        """``GET /api/cocalc-sync/status``: version, open documents, errors caught by place."""
        from .errors_seen import errors_seen

        return {
            "version": __version__,
            "documents": {
                "notebooks": len(self.documents.documents),
                "files": len(self.file_rooms.documents),
            },
            "errors": errors_seen(),
        }

    async def file_exists(self, path: str) -> bool:
        from jupyter_server.utils import ensure_async

        return bool(await ensure_async(self.server.contents_manager.file_exists(path)))

    def initialize_handlers(self) -> None:
        from tornado.ioloop import IOLoop

        from .handlers import routes

        page_config = self.server.web_app.settings.setdefault("page_config_data", {})
        page_config["serverSideExecution"] = self.server_side_execution
        self.handlers.extend(routes())
        IOLoop.current().add_callback(self._after_start)

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        # jupyter_server's hook for work that needs the running event loop (a server that
        # runs its own loop: never one embedded in another program, whose signals are its own)
        _stop_gracefully_on_sigint(serverapp)
        self._after_start()
        # what the server made starting is never garbage: the collector stops walking it (an
        # embedded server's process, the tests', is not this extension's to freeze)
        frozen = freeze_startup_objects()
        self.log.debug("%d objects of the server's start kept out of garbage collection", frozen)
        collect_young_objects_less_often()

    def _after_start(self) -> None:
        """Runs once the server's event loop does: pool start, one owner for collaboration.

        Called from jupyter_server's start hook and from a loop callback (servers embedded in
        tests are started without the hook); only the first call does anything.
        """
        if getattr(self, "_started_once", False):
            return
        self._started_once = True
        self._retention_task = asyncio.get_running_loop().create_task(self._apply_retention())
        start_pool = getattr(self.server.kernel_manager, "start_pool", None)
        if callable(start_pool):
            start_pool()
        from .ydoc_api.registration import real_ydoc_enabled

        if real_ydoc_enabled(self.server):
            self.log.warning(
                "jupyter_server_ydoc is enabled too: jupyter-cocalc-sync serves "
                "/api/collaboration and jupyter_server_ydoc's routes are removed "
                "(disable it: jupyter server extension disable jupyter_server_ydoc)"
            )
            _drop_foreign_collaboration_routes(self.server.web_app)

    async def _apply_retention(self) -> None:
        """Thin out old history once an hour, off the event loop (squashes replay elsewhere)."""
        from .errors_seen import count_error
        from .store.protocol import STORE_ERRORS

        while True:
            await asyncio.sleep(RETENTION_PERIOD)
            try:
                await self.history.apply_retention()
            except STORE_ERRORS as e:  # (the next pass tries again)
                self.log.warning("applying the history retention failed: %s", e)
            except Exception as e:  # a bug of ours: the next pass runs all the same
                count_error("history.retention", e, "the history retention", logger=self.log)

    async def stop_extension(self) -> None:
        release_workers_at_exit()  # (the server's process must exit once its loop has stopped)
        # the clients first: they learn the server is going (and reconnect to the next one)
        # before their documents close, and nothing they were sent is left half-written
        await self.room_connections.close_all()
        extension_rooms = getattr(self, "extension_rooms", None)
        if extension_rooms is not None:  # (the extensions' replicas leave their rooms first)
            extension_rooms.close()
        task = getattr(self, "_retention_task", None)
        if task is not None:
            task.cancel()
        self.activity.close()
        await self.history_service.close_all()
        await self.documents.close_all()
        await self.kernels.close()
        await self.stateless.pool.close()
        await self.file_rooms.close_all()
        await self.changelog.flushed()
        await self.blobs.flushed()
        self.changelog.close()
        self.store.close()
        await stop_releasing()


def _stop_gracefully_on_sigint(serverapp: ServerApp) -> None:
    """Make SIGINT stop the server as SIGTERM does, when nothing else handles it.

    Without a terminal jupyter_server leaves SIGINT to Python, whose KeyboardInterrupt ends the
    event loop with no cleanup: no extension stops, no kernel is shut down (they outlive the
    server), and the interpreter's exit then waits forever for AnyIO's idle worker threads
    (whose tasks never end). JupyterHub stops single-user servers with SIGINT, so they hung
    until SIGKILL and left their kernels running. With a terminal, jupyter_server's own
    handler (the "shut down?" prompt) stays.
    """
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, serverapp._signal_stop)


#: seconds between two passes of the history retention
RETENTION_PERIOD = 3600.0

CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"


def _drop_foreign_collaboration_routes(web_app: Application) -> None:
    """Remove ``/api/collaboration`` routes that another extension registered."""
    for router in (web_app.default_router, web_app.wildcard_router):
        for rule in list(getattr(router, "rules", [])):
            target = rule.target
            if hasattr(target, "rules"):
                _drop_from(target)
    return None


def _drop_from(router: RuleRouter) -> None:
    for rule in list(router.rules):
        handler = getattr(rule, "target", None)
        pattern = getattr(getattr(rule, "matcher", None), "regex", None)
        if (
            isinstance(handler, type)
            and pattern is not None
            and "/api/collaboration" in pattern.pattern
            and not handler.__module__.startswith("jupyter_cocalc_sync")
        ):
            router.rules.remove(rule)
