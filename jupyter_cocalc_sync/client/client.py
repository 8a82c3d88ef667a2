"""Connect to a running Jupyter server with this extension and use notebooks live.

```python
from jupyter_cocalc_sync.client import connect

async with connect("http://127.0.0.1:8888", token="…") as server:
    nb = await server.open("work/analysis.ipynb")
    nb.set({"type": "cell", "id": "c1", "input": "print(1)", "pos": 0, "cell_type": "code"})
    nb.commit()
    print(nb.get_one({"type": "cell", "id": "c1"})["input"])
```

A ``LiveNotebook`` holds a replica of the notebook's SyncDB table, synced over the notebook's
y-websocket room: ``set``/``get``/``get_one``/``delete``/``commit`` and ``on_change`` work as on
the server, and every commit reaches every other client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
from httpx_ws import WebSocketDisconnect, aconnect_ws

from ..errors import CocalcSyncError
from ..notebook.schema import notebook_syncdb
from ..rooms import protocol
from ..sync.table import LOCAL, ChangeEvent, Record, SyncDB


class ServerError(CocalcSyncError):
    """The server answered a request with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class CocalcSyncClient:
    """A connection to one Jupyter server (URL + token)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """``http``: a client that is already authenticated some other way (e.g. JupyterHub's
        OAuth cookies and their XSRF header), with ``url`` as its base URL; closed with this."""
        self.url = url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"token {token}"} if token else {}
        self.http = http or httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)
        self._notebooks: list[LiveNotebook] = []

    async def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Call a REST route; raises ``ServerError`` with the server's message on errors."""
        response = await self.http.request(method, path, json=body, params=params or None)
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise ServerError(response.status_code, message)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    @staticmethod
    def notebook_url(path: str, suffix: str = "") -> str:
        return f"/api/cocalc-sync/notebooks/{quote(path)}{suffix}"

    async def open(self, path: str, *, db: SyncDB | None = None) -> LiveNotebook:
        """Open ``path`` (an API path) and wait until the local replica is in sync.

        ``db`` continues with an existing replica (e.g. after a reconnect): what it has that
        the server lacks is sent, and nothing is duplicated.
        """
        info = await self.request("GET", self.notebook_url(path), records="false")
        notebook = LiveNotebook(self, info["path"], info["file_id"], db=db)
        await notebook.start()
        self._notebooks.append(notebook)
        return notebook

    async def close(self) -> None:
        notebooks, self._notebooks = self._notebooks, []
        for notebook in notebooks:
            await notebook.close()
        await self.http.aclose()

    async def __aenter__(self) -> CocalcSyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


@contextlib.asynccontextmanager
async def connect(url: str, token: str | None = None) -> AsyncIterator[CocalcSyncClient]:
    """``async with connect(url, token) as server: …``"""
    client = CocalcSyncClient(url, token)
    try:
        yield client
    finally:
        await client.close()


class LiveNotebook:
    """A live replica of one notebook's SyncDB table."""

    def __init__(
        self, client: CocalcSyncClient, path: str, file_id: str, *, db: SyncDB | None = None
    ) -> None:
        self.client = client
        self.path = path
        self.file_id = file_id
        self.db: SyncDB = db if db is not None else notebook_syncdb()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.closed_reason: str | None = None
        unsubscribes = [
            self.db.on_update(self._on_update),
            self.db.on_change(lambda event: self._changed.set()),
        ]
        self._unsubscribe = lambda: [u() for u in unsubscribes]

    # -- the table API ----------------------------------------------------------------------

    def set(self, record: Record) -> None:
        self.db.set(record)

    def delete(self, where: Record) -> int:
        return self.db.delete(where)

    def get(self, where: Record | None = None) -> list[Record]:
        return self.db.get(where)

    def get_one(self, where: Record) -> Record | None:
        return self.db.get_one(where)

    def commit(self) -> bool:
        """Send the changes made since the last commit to the server as one change."""
        return self.db.commit()

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> Callable[[], None]:
        return self.db.on_change(callback)

    async def wait_for(self, predicate: Callable[[LiveNotebook], Any], timeout: float = 30) -> Any:
        """Wait until ``predicate(self)`` is true (re-checked after every change)."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                value = predicate(self)
                if value:
                    return value
                await self._changed.wait()

    # -- running ----------------------------------------------------------------------------

    def _url(self, suffix: str) -> str:
        return self.client.notebook_url(self.path, suffix)

    async def run(self, cell_ids: list[str]) -> list[str]:
        """Ask the server to run these cells, by setting their state to ``"start"``.

        Going through the table (rather than the REST route) means this replica shows the
        cells as not idle until the server's own later changes arrive, so ``wait_idle`` right
        after ``run`` cannot see a stale "idle". Returns the ids of the code cells asked for.
        """
        wanted = []
        with self.db.transaction():
            for cell_id in cell_ids:
                record = self.db.get_one({"type": "cell", "id": cell_id})
                if record is None:
                    raise ServerError(404, f"no cell {cell_id!r} in {self.path}")
                if record.get("cell_type", "code") == "code":
                    self.db.set({"type": "cell", "id": cell_id, "state": "start"})
                    wanted.append(cell_id)
        self.commit()
        return wanted

    async def run_all(self) -> list[str]:
        cells = sorted(self.get({"type": "cell"}), key=lambda c: (c.get("pos", 0), c["id"]))
        return await self.run([c["id"] for c in cells if c.get("cell_type", "code") == "code"])

    async def wait_idle(self, cell_ids: list[str] | None = None, timeout: float = 300) -> None:
        """Wait until the given cells (default: all) are idle in this replica."""

        def idle(nb: LiveNotebook) -> bool:
            cells = nb.get({"type": "cell"})
            wanted = set(cell_ids) if cell_ids is not None else None
            return all(
                c.get("state") in (None, "idle")
                for c in cells
                if wanted is None or c["id"] in wanted
            )

        await self.wait_for(idle, timeout=timeout)

    async def interrupt(self) -> None:
        await self.client.request("POST", self._url("/interrupt"), {})

    async def restart(self, *, run_all: bool = False, clear: bool = False) -> None:
        await self.client.request(
            "POST", self._url("/restart"), {"run_all": run_all, "clear": clear}
        )

    async def change_kernel(self, name: str) -> None:
        await self.client.request("POST", self._url("/kernel"), {"name": name})

    async def more_output(self, cell_id: str) -> dict[str, Any]:
        """The output past the cell's visible limits: ``{"messages", "truncated",
        "discarded"}``."""
        return await self.client.request("GET", self._url(f"/cells/{quote(cell_id)}/more_output"))

    async def answer_input(self, cell_id: str, value: str) -> None:
        """Answer the cell's pending ``input()``/``getpass()`` (never stored in the notebook)."""
        await self.client.request("POST", self._url("/input"), {"cell_id": cell_id, "value": value})

    # -- sync -------------------------------------------------------------------------------

    def _on_update(self, update: bytes, origin: Any) -> None:
        if origin == LOCAL:
            self._outbox.put_nowait(protocol.sync_message(protocol.SYNC_UPDATE, update))

    async def start(self) -> None:
        base = self.client.url.replace("http", "ws", 1)
        url = f"{base}/api/cocalc-sync/room/syncdb:{self.file_id}"
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._run(url, ready))
        await ready
        await asyncio.wait_for(self._synced.wait(), timeout=60)

    async def _run(self, url: str, ready: asyncio.Future[None]) -> None:
        try:
            async with aconnect_ws(url, self.client.http) as ws:
                ready.set_result(None)
                await ws.send_bytes(protocol.sync_message(protocol.SYNC_STEP1, self.db.get_state()))
                sender = asyncio.get_running_loop().create_task(self._send(ws))
                try:
                    while True:
                        frame = await ws.receive_bytes()
                        self._receive(frame, ws)
                finally:
                    sender.cancel()
        except Exception as e:
            disconnect = _disconnect_of(e)
            if disconnect is not None:
                # e.g. 1011 {"reason": "store_unavailable", "retry": true}: reconnect later
                self.closed_reason = f"{disconnect.code}: {disconnect.reason}"
            else:
                self.closed_reason = repr(e)
            if not ready.done():
                ready.set_exception(e)
        finally:
            self._changed.set()

    def _receive(self, frame: bytes, ws: Any) -> None:
        message = protocol.decode(frame)
        if message.kind != protocol.SYNC:
            return
        if message.sub == protocol.SYNC_STEP1:
            reply = self.db.get_update(message.payload)
            self._outbox.put_nowait(protocol.sync_message(protocol.SYNC_STEP2, reply))
            return
        self.db.apply_update(message.payload, origin="server")
        if message.sub == protocol.SYNC_STEP2:
            self._synced.set()

    async def _send(self, ws: Any) -> None:
        while True:
            await ws.send_bytes(await self._outbox.get())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._unsubscribe()


def _disconnect_of(exc: BaseException) -> WebSocketDisconnect | None:
    """The websocket close behind ``exc`` (httpx-ws raises it inside an exception group)."""
    if isinstance(exc, WebSocketDisconnect):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _disconnect_of(inner)
            if found is not None:
                return found
    return None
