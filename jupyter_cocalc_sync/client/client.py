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

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from ..format.ipynb import sorted_cells
from ..format.schema import notebook_syncdb
from ..sync.table import SyncDB
from .actions import NotebookActionsMixin
from .errors import ServerError
from .kernel import KernelQueriesMixin
from .replica import OWN, RoomReplica
from .widgets import LiveWidgets

#: a JSON object as the server answers it
JSONObject = dict[str, Any]


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

    async def request(self, method: str, path: str, body: Any = None, **params: Any) -> object:
        """Call a REST route: its JSON (or text) answer; raises ``ServerError`` with the
        server's message on errors."""
        response = await self.http.request(method, path, json=body, params=params or None)
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise ServerError(response.status_code, message)
        if response.headers.get("content-type", "").startswith("application/json"):
            answer: object = response.json()
            return answer
        return response.text

    async def request_json(
        self, method: str, path: str, body: Any = None, **params: Any
    ) -> JSONObject:
        """``request`` for a route that answers with a JSON object."""
        answer = await self.request(method, path, body, **params)
        if not isinstance(answer, dict):
            raise ServerError(502, f"{method} {path}: the answer is not a JSON object")
        return answer

    @staticmethod
    def notebook_url(path: str, suffix: str = "") -> str:
        return f"/api/cocalc-sync/notebooks/{quote(path)}{suffix}"

    async def open(self, path: str, *, db: SyncDB | None = None) -> LiveNotebook:
        """Open ``path`` (an API path) and wait until the local replica is in sync.

        ``db`` continues with an existing replica (e.g. after a reconnect): what it has that
        the server lacks is sent, and nothing is duplicated.
        """
        info = await self.request_json("GET", self.notebook_url(path), records="false")
        notebook = LiveNotebook(
            self, info["path"], info["file_id"], db=db, awareness_id=info.get("awareness_id")
        )
        await notebook.start()
        self._notebooks.append(notebook)
        return notebook

    async def execute(
        self,
        code: str,
        *,
        kernel: str | None = None,
        history: list[str] | None = None,
        path: str | None = None,
        timeout_ms: float | None = None,
        max_output: int | None = None,
        no_cache: bool = False,
    ) -> dict[str, Any]:
        """Run ``code`` in a fresh kernel (after ``history``): ``{"outputs", "cached"}``.

        ``ServerError`` 408 past the time limit, 429 when the server runs too many already.
        """
        body: dict[str, Any] = {"code": code, "history": history or [], "no_cache": no_cache}
        optional = {
            "kernel": kernel,
            "path": path,
            "timeout_ms": timeout_ms,
            "max_output": max_output,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return await self.request_json("POST", "/api/cocalc-sync/execute", body)

    async def write_student_version(self, path: str, target: str | None = None) -> dict[str, Any]:
        """Write the nbgrader student version of notebook ``path`` to the new file ``target``
        (default ``release/…``): ``{"path", "cells", "checksums"}``."""
        body = {"target": target} if target else {}
        return await self.request_json("POST", self.notebook_url(path, "/assignment/student"), body)

    async def tampered_cells(self, path: str) -> list[dict[str, Any]]:
        """Cells of nbgrader notebook ``path`` changed where students may not change them."""
        reply = await self.request_json("GET", self.notebook_url(path, "/assignment/tampered"))
        tampered: list[dict[str, Any]] = reply["tampered"]
        return tampered

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


class LiveNotebook(RoomReplica, NotebookActionsMixin, KernelQueriesMixin):
    """A live replica of one notebook's SyncDB table; ``widgets`` is its widget table, its
    actions are in ``client/actions.py`` and its kernel's answers in ``client/kernel.py``."""

    def __init__(
        self,
        client: CocalcSyncClient,
        path: str,
        file_id: str,
        *,
        db: SyncDB | None = None,
        awareness_id: int | None = None,
    ) -> None:
        base = client.url.replace("http", "ws", 1) + "/api/cocalc-sync/room/"
        super().__init__(
            client.http, f"{base}syncdb:{file_id}", db if db is not None else notebook_syncdb()
        )
        self.client = client
        self.path = path
        self.file_id = file_id
        #: the server's awareness client id in the room (its state: ``server_state``)
        self.awareness_id = awareness_id
        self.widgets = LiveWidgets(client.http, f"{base}ipywidgets:{file_id}")

    def cells(self) -> list[dict[str, Any]]:
        """The cell records in notebook order (``get({"type": "cell"})`` is in no order)."""
        return sorted_cells(self.get({"type": "cell"}))

    async def start(self) -> None:
        await super().start()
        await self.widgets.start()

    async def close(self) -> None:
        await self.widgets.close()
        await super().close()

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
        with self.db.transaction(OWN):
            for cell_id in cell_ids:
                record = self.db.get_one({"type": "cell", "id": cell_id})
                if record is None:
                    raise ServerError(404, f"no cell {cell_id!r} in {self.path}")
                if record.get("cell_type", "code") == "code":
                    self.db.set({"type": "cell", "id": cell_id, "state": "start"}, OWN)
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
        return await self.client.request_json(
            "GET", self._url(f"/cells/{quote(cell_id)}/more_output")
        )

    async def answer_input(self, cell_id: str, value: str) -> None:
        """Answer the cell's pending ``input()``/``getpass()`` (never stored in the notebook)."""
        await self.client.request("POST", self._url("/input"), {"cell_id": cell_id, "value": value})
