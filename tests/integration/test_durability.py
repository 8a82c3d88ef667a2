"""Durable before visible, on every path, with the log writer slowed down or failing.

The checks read the store file itself, with a connection of their own, at the moment a client
first sees a change: a server that sends before its write has committed is caught whatever
the timing, because the slowed writer keeps the commit 0.4 s away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from helpers import cell_sources, eventually, write_notebook
from httpx_ws import WebSocketDisconnect, aconnect_ws
from pycrdt import Doc, Map, Provider
from pycrdt.websocket.websocket import HttpxWebsocket
from servers import ServerProcess

from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import STORE

SLOW_WRITE = 0.4


def _read_rows(store: Path | str, sql: str, params: tuple) -> list[tuple]:
    """Rows read with a connection of the test's own: SQLite file or PostgreSQL URL."""
    if str(store).startswith("postgresql://"):
        import psycopg

        with psycopg.connect(str(store), autocommit=True) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def records_on_disk(store: Path | str, file_id: str) -> dict[str, dict]:
    """The notebook's cells as the store holds them (snapshot + every logged change)."""
    snapshots = _read_rows(
        store,
        "SELECT version, data FROM snapshots WHERE doc = ? ORDER BY version DESC LIMIT 1",
        (file_id,),
    )
    snapshot = snapshots[0] if snapshots else None
    base = snapshot[0] if snapshot else 0
    rows = _read_rows(
        store,
        "SELECT data FROM changes WHERE doc = ? AND version > ? ORDER BY version",
        (file_id, base),
    )
    db = notebook_syncdb()
    for data in ([snapshot[1]] if snapshot else []) + [r[0] for r in rows]:
        db.apply_update(data, STORE)
    return {r["id"]: r for r in db.get({"type": "cell"})}


@pytest.fixture
def extension(jp_serverapp):
    return jp_serverapp.web_app.settings["cocalc_sync"]


@pytest.fixture
def slow_log(extension, monkeypatch):
    """Every change-log transaction takes 0.4 s longer before it commits (on the worker
    thread: none is written inline on the event loop's)."""
    changelog = extension.changelog
    monkeypatch.setattr(changelog, "inline_bytes", 0)
    real_write = changelog._write
    writes: list[float] = []

    def slow_write(conn, batch):
        time.sleep(SLOW_WRITE)  # on the log's worker thread: the event loop runs on
        result = real_write(conn, batch)
        writes.append(time.monotonic())
        return result

    monkeypatch.setattr(changelog, "_write", slow_write)
    return writes


async def first_sight_is_durable(predicate, doc: Doc, on_disk) -> bool:
    """Wait until ``predicate()`` holds on a client's ``doc``; is the change on disk then?"""
    await eventually(predicate, doc, timeout=30)
    return on_disk()


class CountingWebsocket(HttpxWebsocket):
    """A y-websocket channel that counts the bytes it receives."""

    received = 0

    async def recv(self) -> bytes:
        message = await super().recv()
        self.received += len(message)
        return message


@contextlib.asynccontextmanager
async def syncdb_peer(server, file_id: str):
    """A raw pycrdt peer of the SyncDB room: ``(doc, channel)``."""
    room = f"syncdb:{file_id}"
    doc = Doc()
    async with aconnect_ws(server.ws_url(f"/api/cocalc-sync/room/{room}"), server.http) as ws:
        channel = CountingWebsocket(ws, room)
        async with Provider(doc, channel):
            records = doc.get("records", type=Map)
            await eventually(lambda: len(records) > 0, doc)
            yield doc, channel


@contextlib.asynccontextmanager
async def ynotebook_peer(server, path: str):
    """A JupyterLab-like YNotebook peer: ``(ynotebook, channel)``."""
    from jupyter_ydoc import YNotebook

    session = await server.session(path)
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    ynb = YNotebook(Doc())
    async with aconnect_ws(url, server.http) as ws:
        channel = CountingWebsocket(ws, room)
        async with Provider(ynb.ydoc, channel) as provider:
            async with asyncio.timeout(60):
                await provider.synced.wait()  # (a big first sync: several updates, then this)
            ymeta = ynb.ydoc.get("meta", type=Map)
            await eventually(lambda: len(ymeta) > 0, ynb.ydoc)
            yield ynb, channel


def input_of(doc: Doc, cell_id: str) -> str | None:
    record = doc.get("records", type=Map).get(json.dumps(["cell", cell_id], separators=(",", ":")))
    return str(record["input"]) if isinstance(record, Map) and "input" in record else None


def output_text(doc: Doc, cell_id: str) -> str:
    record = doc.get("records", type=Map).get(json.dumps(["cell", cell_id], separators=(",", ":")))
    if not isinstance(record, Map) or not isinstance(record.get("output"), Map):
        return ""
    outputs = record["output"]
    return "".join(
        str(o["text"]) if isinstance(o, Map) else str(o.get("text", ""))
        for k, o in sorted(outputs.items(), key=lambda kv: int(kv[0]))
        if isinstance(o, (Map, dict))
    )


async def test_no_client_and_no_reader_sees_a_change_before_its_write(
    store_backend, server, root_dir, live, extension, slow_log
):
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "print('from the runner')"])
    store = extension.store_url or Path(extension.store_path)
    nb = await live("nb.ipynb")
    file_id = nb.file_id

    def disk_input(cell_id: str, text: str):
        return lambda: text in (records_on_disk(store, file_id).get(cell_id) or {}).get("input", "")

    async with (
        ynotebook_peer(server, "nb.ipynb") as (lab1, _),
        ynotebook_peer(server, "nb.ipynb") as (lab2, _),
        syncdb_peer(server, file_id) as (peer, _),
    ):
        # 1. a JupyterLab client types
        source = lab1.ycells[0]["source"]
        source += "  # lab"  # (not ycells[0]["source"] += …: that would replace the Text)
        on_disk = disk_input("cell-0", "# lab")
        seen = await asyncio.gather(
            first_sight_is_durable(lambda: "# lab" in cell_sources(lab2)[0], lab2.ydoc, on_disk),
            first_sight_is_durable(
                lambda: "# lab" in (input_of(peer, "cell-0") or ""), peer, on_disk
            ),
        )
        assert seen == [True, True], "a client saw a JupyterLab edit that was not on disk"

        # 2. a SyncDB client edits; a REST reader asks at the same time
        nb.set({"type": "cell", "id": "cell-0", "input": "a = 2  # syncdb"})
        nb.commit()
        on_disk = disk_input("cell-0", "# syncdb")

        async def rest_reader() -> bool:
            reply = (await server.http.get("/api/cocalc-sync/notebooks/nb.ipynb")).json()
            inputs = {r["id"]: r.get("input") for r in reply["records"]}
            return "# syncdb" not in inputs["cell-0"] or on_disk()

        seen = await asyncio.gather(
            first_sight_is_durable(lambda: "# syncdb" in cell_sources(lab1)[0], lab1.ydoc, on_disk),
            first_sight_is_durable(lambda: "# syncdb" in cell_sources(lab2)[0], lab2.ydoc, on_disk),
            rest_reader(),
        )
        assert seen == [True, True, True], "a SyncDB edit was visible before it was on disk"

        # 3. REST writes
        response = await server.http.post(
            "/api/cocalc-sync/notebooks/nb.ipynb/records",
            json={"set": [{"type": "cell", "id": "cell-0", "input": "a = 3  # rest"}]},
        )
        assert response.status_code == 200
        on_disk = disk_input("cell-0", "# rest")
        assert on_disk(), "REST answered before its change was on disk"
        seen = await asyncio.gather(
            first_sight_is_durable(lambda: "# rest" in cell_sources(lab1)[0], lab1.ydoc, on_disk),
            first_sight_is_durable(
                lambda: "# rest" in (input_of(peer, "cell-0") or ""), peer, on_disk
            ),
        )
        assert seen == [True, True]

        # 4. the runner writes an output
        response = await server.http.post(
            "/api/cocalc-sync/notebooks/nb.ipynb/run", json={"cell_ids": ["cell-1"]}
        )
        assert response.status_code == 202

        def output_on_disk() -> bool:
            record = records_on_disk(store, file_id).get("cell-1") or {}
            return "from the runner" in json.dumps(record.get("output") or {})

        def lab_output(ynb) -> bool:
            outputs = ynb.ycells[1].get("outputs")
            return bool(outputs) and "from the runner" in json.dumps(outputs.to_py())

        seen = await asyncio.gather(
            first_sight_is_durable(lambda: lab_output(lab2), lab2.ydoc, output_on_disk),
            first_sight_is_durable(
                lambda: "from the runner" in output_text(peer, "cell-1"), peer, output_on_disk
            ),
        )
        assert seen == [True, True], "a runner output was sent before it was on disk"
    assert len(slow_log) >= 4  # the slowed writer really was on the path


@contextlib.contextmanager
def small_disk(where: Path, size: str = "4m"):
    """A size-limited tmpfs (the test is skipped where mounting is not allowed)."""
    where.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the file system is full."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    # unbuffered: closing the file has nothing left to write into the full file system
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
        while True:
            f.write(chunk)
            f.flush()
    return filler


@pytest.fixture
def disk(tmp_path_factory):
    with small_disk(tmp_path_factory.mktemp("small") / "disk") as where:
        yield where


@pytest.fixture
def cocalc_config(cocalc_config, request):
    if "outage" in request.fixturenames and request.getfixturevalue("store_backend") == "sqlite":
        disk = request.getfixturevalue("disk")
        return {**cocalc_config, "store_path": str(disk / "store.db")}
    return cocalc_config


class Outage:
    """The store failing for a while: a full disk (SQLite), the database stopped (PostgreSQL)."""

    def __init__(self, store_backend: str, request) -> None:
        self.disk: Path | None = None
        self.cluster = None
        if store_backend == "sqlite":
            self.disk = request.getfixturevalue("disk")
        else:
            self.cluster = request.getfixturevalue("postgres_cluster")
        self.filler: Path | None = None
        self.stopped = False

    def begin(self) -> None:
        if self.disk is not None:
            self.filler = fill(self.disk)
        else:
            self.cluster.stop()
            self.stopped = True

    def end(self) -> None:
        if self.filler is not None:
            os.unlink(self.filler)
            self.filler = None
        if self.stopped:
            self.cluster.start()
            self.stopped = False


@pytest.fixture
def outage(store_backend, request):
    failing = Outage(store_backend, request)
    yield failing
    failing.end()  # the session's database is there for the next tests whatever happened


@pytest.mark.expect_errors(r"writing the change log of \S+ failed: ", r"503 POST .*/records")
async def test_a_failing_store_is_reported_loses_nothing_and_heals(
    server, root_dir, live, extension, outage
):
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2"])
    store = extension.store_url or Path(extension.store_path)
    nb = await live("nb.ipynb")
    nb.set({"type": "cell", "id": "cell-0", "input": "a = 'before'"})
    nb.commit()
    await eventually(
        lambda: records_on_disk(store, nb.file_id)["cell-0"]["input"] == "a = 'before'"
    )

    async with syncdb_peer(server, nb.file_id) as (peer, _):
        outage.begin()
        # an edit that cannot be written: the clients are told, nobody is sent the change
        nb.set({"type": "cell", "id": "cell-1", "input": "b = 'during'"})
        nb.commit()
        await eventually(lambda: nb.closed_reason)
        code, _, reason = nb.closed_reason.partition(": ")
        assert code == "1011" and json.loads(reason) == {
            "reason": "store_unavailable",
            "retry": True,
        }
        assert input_of(peer, "cell-1") == "b = 2"  # the other client never got it

    # while the store fails: REST writes answer 503, new room clients are refused
    response = await server.http.post(
        "/api/cocalc-sync/notebooks/nb.ipynb/records",
        json={"set": [{"type": "cell", "id": "cell-0", "input": "refused"}]},
    )
    assert response.status_code == 503 and "resumes" in response.json()["message"]
    url = server.ws_url(f"/api/cocalc-sync/room/syncdb:{nb.file_id}")
    with pytest.raises(Exception) as closed:  # httpx-ws wraps the close in an exception group
        async with aconnect_ws(url, server.http) as ws:
            await ws.receive_bytes()
    refusal = closed.value
    while isinstance(refusal, BaseExceptionGroup):
        refusal = refusal.exceptions[0]
    assert isinstance(refusal, WebSocketDisconnect) and refusal.code == 1011
    if outage.disk is not None:  # nothing acknowledged is lost (a stopped database: below)
        assert records_on_disk(store, nb.file_id)["cell-0"]["input"] == "a = 'before'"

    # the store comes back: the queued edit is written and editing resumes by itself
    outage.end()
    await eventually(
        lambda: records_on_disk(store, nb.file_id)["cell-1"]["input"] == "b = 'during'"
    )

    async def writable() -> bool:
        response = await server.http.post(
            "/api/cocalc-sync/notebooks/nb.ipynb/records",
            json={"set": [{"type": "cell", "id": "cell-0", "input": "a = 'after'"}]},
        )
        return response.status_code == 200

    from helpers import poll

    await poll(writable)
    again = await live("nb.ipynb")
    cells = {r["id"]: r["input"] for r in again.get({"type": "cell"})}
    assert cells == {"cell-0": "a = 'after'", "cell-1": "b = 'during'"}
    assert records_on_disk(store, nb.file_id)["cell-0"]["input"] == "a = 'after'"


@pytest.mark.expect_errors(r"the store \S+ (\(schema \S+\) )?is in use by another server")
async def test_a_second_server_on_the_same_store_refuses_to_start(
    tmp_path, store_spec, server, extension
):
    # the first server is the test's in-process one; the second a subprocess on its store
    root = tmp_path / "second-root"
    root.mkdir()
    postgres = store_spec.startswith("postgresql://")
    store = {"store_url": store_spec, "store_lock_wait": 1} if postgres else {}
    config = {"CocalcSync": {"store_path": extension.store_path, **store}}
    second = ServerProcess(root, tmp_path / "second-state", config=config)
    try:
        with pytest.raises(RuntimeError, match="server exited") as refused:
            second.start()
        message = str(refused.value)
        if postgres:  # the database's session of the first server holds the schema
            assert re.search(r"is in use by another server \(backend pid \d+", message)
            assert store_spec.split("?")[0] in message
        else:
            assert extension.store_path in message
            assert f"pid {os.getpid()}" in message
        # the first server is unharmed
        assert (await server.http.get("/api/status")).status_code == 200
    finally:
        second.kill()
