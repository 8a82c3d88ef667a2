"""``WidgetBridge``: the server as a widget client of the notebook's kernel.

Kernel → table: ``comm_open`` of a ``jupyter.widget`` comm fills the model's ``state``,
``update`` is merged into its ``value``, ``custom`` becomes its ``message``, ``comm_close``
removes it; binary buffers go to the blob store and the table keeps their hashes. The kernel
answers every change a client sends with an ``echo_update`` to all its clients: the echo of a
change the server sent is dropped (the table has it already, and a second copy would bounce
back as a new change), the echo of a JupyterLab user's change (sent over its own kernel
websocket) is merged like an ``update``.

Table → kernel: a peer's write into a ``value`` record is sent as ``comm_msg {"method":
"update"}`` with the keys that changed; a peer that may not execute gets its write undone.

The table is cleared when the kernel restarts or another kernel takes over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from ..kernels.channels import Message
from ..origin import SERVER
from ..sync.table import ChangeEvent, SyncDB, json_copy, same_json
from .capture import OutputCapture
from .table import BUFFER_MIME, WidgetTable, encode_path, remove_buffers

if TYPE_CHECKING:
    from ..kernels.kernel import JupyterKernel, KernelState

log = logging.getLogger(__name__)

WIDGET_TARGET = "jupyter.widget"


class BufferStore(Protocol):
    """Where buffers go (the blob store)."""

    def put(self, raw: bytes, mime: str, doc: str | None = None) -> str: ...

    async def get(self, sha1: str) -> tuple[str, bytes] | None: ...


class WidgetBridge:
    """Keeps one notebook's widget table and its kernel in step (module docstring)."""

    def __init__(self, db: SyncDB, blobs: BufferStore, doc_id: str) -> None:
        self.db = db
        self.table = WidgetTable(db)
        self.blobs = blobs
        self.doc_id = doc_id
        self.kernel: JupyterKernel | None = None
        self.capture = OutputCapture(self)
        #: model id -> its value as last sent to or received from the kernel
        self._known: dict[str, dict[str, Any]] = {}
        self._unobserve: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe = db.on_change(self._on_change)

    # -- the kernel -------------------------------------------------------------------------

    def use_kernel(self, kernel: JupyterKernel) -> None:
        """Follow ``kernel`` from now on (a new kernel: the old one's widgets are gone)."""
        if kernel is self.kernel:
            return
        self._detach()
        self.kernel = kernel
        self._unobserve = [kernel.observe_iopub(self), kernel.on_state(self._on_kernel_state)]
        self.clear()

    def _detach(self) -> None:
        for unobserve in self._unobserve:
            unobserve()
        self._unobserve = []
        self.kernel = None

    def _on_kernel_state(self, state: KernelState) -> None:
        if state in ("starting", "failed", "closed"):  # restarted, died, or gone
            self.clear()

    def clear(self) -> None:
        self._known.clear()
        self.capture.reset()
        with self.db.transaction(SERVER):
            self.table.clear(SERVER)
        self.db.commit(SERVER)

    def close(self) -> None:
        self._detach()
        self._unsubscribe()
        for task in self._tasks:
            task.cancel()

    # -- kernel → table ---------------------------------------------------------------------

    def on_iopub(self, msg: Message, ours: bool) -> bool:
        """``IopubObserver``: comm messages fill the table; captured outputs are taken."""
        msg_type = msg["msg_type"]
        content = msg.get("content") or {}
        if msg_type == "comm_open":
            if content.get("target_name") == WIDGET_TARGET:
                self._opened(content, msg.get("buffers") or [])
            return True
        if msg_type == "comm_msg":
            if self.table.has(content.get("comm_id", "")):
                self._comm_msg(msg, content)
            return True
        if msg_type == "comm_close":
            model_id = content.get("comm_id", "")
            if self.table.has(model_id):
                self._known.pop(model_id, None)
                self.capture.forget(model_id)
                with self.db.transaction(SERVER):
                    self.table.close(model_id, SERVER)
                self.db.commit(SERVER)
            return True
        return self.capture.capturing and self.capture.take(msg, self.caused_by_us(msg))

    def caused_by_us(self, msg: Message) -> bool:
        kernel = self.kernel
        return kernel is not None and msg["parent_header"].get("session") == kernel.session_id

    def _opened(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        model_id = content["comm_id"]
        data = content.get("data") or {}
        state, hashes = self._split(data.get("state") or {}, data.get("buffer_paths"), buffers)
        self._known[model_id] = {}
        with self.db.transaction(SERVER):
            self.table.open(model_id, state, hashes, SERVER)
        self.db.commit(SERVER)
        self.capture.watch(model_id, self.table.state(model_id))

    def _comm_msg(self, msg: Message, content: dict[str, Any]) -> None:
        model_id = content["comm_id"]
        data = content.get("data") or {}
        method = data.get("method")
        buffers = msg.get("buffers") or []
        if method == "echo_update" and self.caused_by_us(msg):
            return  # our own change, already in the table
        if method in ("update", "echo_update"):
            state, hashes = self._split(data.get("state") or {}, data.get("buffer_paths"), buffers)
            self._known.setdefault(model_id, {}).update(json_copy(state))
            with self.db.transaction(SERVER):
                self.table.update(model_id, state, hashes, SERVER)
            self.db.commit(SERVER)
            self.capture.watch(model_id, self.table.state(model_id))
        elif method == "custom":
            stored = [self.blobs.put(bytes(b), BUFFER_MIME, self.doc_id) for b in buffers]
            with self.db.transaction(SERVER):
                self.table.message(model_id, data.get("content"), stored, SERVER)
            self.db.commit(SERVER)

    def _split(
        self, state: dict[str, Any], paths: Any, buffers: list[bytes]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The state without its binary parts, and ``{json(path): sha1}`` of those."""
        paths = paths if isinstance(paths, list) else []
        hashes = {
            encode_path(path): self.blobs.put(bytes(raw), BUFFER_MIME, self.doc_id)
            for path, raw in zip(paths, buffers, strict=False)
        }
        return remove_buffers(state, paths), hashes

    # -- table → kernel ---------------------------------------------------------------------

    def _on_change(self, event: ChangeEvent) -> None:
        if event.local:  # the server's own writes
            return
        for key, change in event.changes.items():
            model_id, kind = str(key[0]), key[1]
            if kind != "value" or change.action == "delete" or not self.table.has(model_id):
                continue
            value = self.table.data(model_id, "value")
            known = self._known.setdefault(model_id, {})
            changed = {k: v for k, v in value.items() if not same_json(known.get(k), v)}
            if not changed:
                continue
            if not event.origin.permissions.execute or self.kernel is None:
                log.warning("undid a widget change from a client that may not execute")
                self._restore(model_id, known)
                continue
            known.update(json_copy(changed))
            self.capture.watch(model_id, self.table.state(model_id))
            self.send_update(model_id, changed)

    def _restore(self, model_id: str, known: dict[str, Any]) -> None:
        with self.db.transaction(SERVER):
            self.db.set({"model_id": model_id, "type": "value", "data": None}, SERVER)
            self.db.set({"model_id": model_id, "type": "value", "data": known}, SERVER)
        self.db.commit(SERVER)

    def send_update(self, model_id: str, state: dict[str, Any]) -> None:
        """Send a state change to the kernel's model (in the background, in order)."""
        kernel = self.kernel
        if kernel is None:
            return
        data = {"method": "update", "state": state, "buffer_paths": []}
        self._spawn(kernel.comms.send(model_id, data))

    def record(self, model_id: str, changes: dict[str, Any]) -> None:
        """Write a change the server made itself (a capture) into the table and the kernel."""
        self._known.setdefault(model_id, {}).update(json_copy(changes))
        with self.db.transaction(SERVER):
            self.table.update(model_id, changes, {}, SERVER)
        self.db.commit(SERVER)
        self.send_update(model_id, changes)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a widget change did not reach the kernel: %s", task.exception())
