"""Fuzzers (hypothesis) over REST bodies and y-websocket frames on both rooms.

Bounded to seconds each; they print how many inputs they tried. Whatever arrives: no 5xx, no
hung request, the server keeps serving, and the document stays one that saves and exports and
that another client converges to.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import nbformat
import pytest
from helpers import eventually, write_notebook
from httpx_ws import WebSocketDisconnect, aconnect_ws
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from jupyter_cocalc_sync.client import CocalcSyncClient
from jupyter_cocalc_sync.transport import protocol

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)  # pycrdt's own limit, client side
    | st.floats()
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ["type", "id", "input", "cell_type", "pos", "exec_count", "state", "output", "metadata"]
fields = st.sampled_from([*FIELDS, "tags", "kernel", "backend_state", "x"])
records = st.builds(
    lambda kind, record_id, extra: {"type": kind, "id": record_id, **extra},
    st.sampled_from(["cell", "settings"]) | json_values,
    st.sampled_from(["cell-0", "main", "new"]) | json_values,
    st.dictionaries(fields, json_values, max_size=4),
)
bodies = json_values | st.fixed_dictionaries(
    {}, optional={"set": st.lists(records, max_size=3), "delete": st.lists(json_values | records)}
)


def run(loop, coroutine):
    return loop.run_until_complete(asyncio.wait_for(coroutine, 30))  # a hung request fails


async def assert_document_healthy(server, root_dir) -> None:
    """Saves, exports, and another client converges to the server's records."""
    response = await server.http.get(NB)
    assert response.status_code == 200
    server_records = response.json()["records"]
    export = await server.http.get(NB + "/export")
    assert export.status_code == 200
    nbformat.reads(export.text, as_version=4)
    client = CocalcSyncClient(server.base_url, server.token)
    live = await client.open("nb.ipynb")
    key = lambda r: json.dumps([r["type"], r["id"]])  # noqa: E731
    assert sorted(live.get(), key=key) == sorted(server_records, key=key)
    await client.close()
    await eventually(lambda: nbformat.read(str(root_dir / "nb.ipynb"), as_version=4))


def test_fuzz_rest_bodies(server, root_dir, jp_asyncio_loop):
    write_notebook(root_dir / "nb.ipynb", ["x = 1", "y = 2"])
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(body=bodies, route=st.sampled_from(["/records", "/revert", "/run", "/restart"]))
    def post(body, route):
        response = run(jp_asyncio_loop, server.http.post(NB + route, content=json.dumps(body)))
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text

    post()
    print(f"REST bodies tried: {sum(statuses.values())}, statuses: {dict(statuses)}")
    run(jp_asyncio_loop, assert_document_healthy(server, root_dir))


def syncdb_change(records: Map, op: str, key: str, field: str, value) -> None:
    record = records.get(key)
    if op == "record" or not isinstance(record, Map):
        records[key] = Map({"type": "cell", "id": "new", field: value})
    elif op == "field":
        record[field] = value
    elif op == "output":
        output = record.get("output")
        if isinstance(output, Map):
            output[str(field)] = value
        else:
            record["output"] = Map({field: value})
    elif op == "text":
        record[field] = Text(str(value))
    else:
        del records[key]


syncdb_ops = st.lists(
    st.tuples(
        st.sampled_from(["record", "field", "output", "text", "delete"]),
        st.sampled_from(['["cell","cell-0"]', '["cell","new"]', '["settings","main"]', "x"]),
        fields | st.sampled_from(["0", "1"]),
        json_values,
    ),
    min_size=1,
    max_size=3,
)
garbage_frames = st.binary(max_size=40) | st.builds(
    lambda payload: protocol.sync_message(protocol.SYNC_UPDATE, payload), st.binary(max_size=40)
)


async def send_to_room(url: str, http, frame_of) -> str:
    """Connect, sync, send the frame ``frame_of(doc)`` makes; how the connection ended."""
    async with aconnect_ws(url, http) as ws:
        doc = Doc()
        await ws.send_bytes(protocol.sync_message(protocol.SYNC_STEP1, b"\x00"))
        while True:
            message = protocol.decode(await ws.receive_bytes())
            if message.kind == protocol.SYNC and message.sub == protocol.SYNC_STEP2:
                doc.apply_update(message.payload)
                break
        await ws.send_bytes(frame_of(doc))
        # a state request after it: answered if the connection is still open
        await ws.send_bytes(protocol.sync_message(protocol.SYNC_STEP1, b"\x00"))
        try:
            while True:
                message = protocol.decode(await ws.receive_bytes())
                if message.kind == protocol.SYNC and message.sub == protocol.SYNC_STEP2:
                    return "kept"
        except WebSocketDisconnect as e:
            assert e.code in (1003, 1007), (e.code, e.reason)
            return f"closed {e.code}"


def update_of(doc: Doc, change) -> bytes:
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    try:
        with doc.transaction():
            change()
    finally:
        doc.unobserve(subscription)
    return protocol.sync_message(protocol.SYNC_UPDATE, updates[0] if updates else b"\x00\x00")


def test_fuzz_syncdb_room_frames(server, root_dir, jp_asyncio_loop):
    write_notebook(root_dir / "nb.ipynb", ["x = 1", "y = 2"])
    file_id = run(jp_asyncio_loop, server.http.get(NB, params={"records": "false"})).json()[
        "file_id"
    ]
    url = server.ws_url(f"/api/cocalc-sync/room/syncdb:{file_id}")
    outcomes: Counter[str] = Counter()

    def frame_for(ops):
        def frame_of(doc: Doc) -> bytes:
            records = doc.get("records", type=Map)
            return update_of(doc, lambda: [syncdb_change(records, *op) for op in ops])

        return frame_of

    @FUZZ
    @given(ops=syncdb_ops | garbage_frames)
    def send(ops):
        frame_of = (lambda doc: ops) if isinstance(ops, bytes) else frame_for(ops)
        outcomes[run(jp_asyncio_loop, send_to_room(url, server.http, frame_of))] += 1

    send()
    print(f"SyncDB room frames tried: {sum(outcomes.values())}, outcomes: {dict(outcomes)}")
    run(jp_asyncio_loop, assert_document_healthy(server, root_dir))


def ynotebook_change(ynb: YNotebook, op: str, field: str, value) -> None:
    cells = ynb.ycells
    if op == "cell":
        cells.append(Map({"id": "fuzz", "cell_type": "code", "source": Text(""), field: value}))
    elif op == "field" and len(cells):
        cells[0][field] = value
    elif op == "outputs" and len(cells):
        cells[0]["outputs"] = Array([value])
    elif op == "meta":
        ynb.ydoc.get("meta", type=Map)["metadata"] = Map({field: value})
    elif len(cells):
        del cells[0]


ynotebook_ops = st.lists(
    st.tuples(
        st.sampled_from(["cell", "field", "outputs", "meta", "delete"]),
        st.sampled_from(["id", "cell_type", "source", "metadata", "execution_count", "outputs"]),
        json_values,
    ),
    min_size=1,
    max_size=3,
)


@pytest.mark.cocalc(file_poll_interval=0)
def test_fuzz_jupyterlab_room_frames(server, root_dir, jp_asyncio_loop):
    write_notebook(root_dir / "nb.ipynb", ["x = 1", "y = 2"])
    session = run(jp_asyncio_loop, server.session("nb.ipynb"))
    room = f"json:notebook:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    outcomes: Counter[str] = Counter()

    def frame_for(ops):
        def frame_of(doc: Doc) -> bytes:
            ynb = YNotebook(doc)
            return update_of(doc, lambda: [ynotebook_change(ynb, *op) for op in ops])

        return frame_of

    @FUZZ
    @given(ops=ynotebook_ops | garbage_frames)
    def send(ops):
        frame_of = (lambda doc: ops) if isinstance(ops, bytes) else frame_for(ops)
        outcomes[run(jp_asyncio_loop, send_to_room(url, server.http, frame_of))] += 1

    send()
    print(f"JupyterLab room frames tried: {sum(outcomes.values())}, outcomes: {dict(outcomes)}")
    run(jp_asyncio_loop, assert_document_healthy(server, root_dir))


# Imported .ipynb files: notebooks written elsewhere, valid or damaged in the ways files get
# damaged (wrong types, missing keys, odd outputs, huge numbers, non-JSON text).
mime_bundles = st.dictionaries(
    st.sampled_from(["text/plain", "image/png", "application/json", "text/html", "x/y"]),
    json_values | st.lists(st.text(max_size=8), max_size=3),
    max_size=3,
)
ipynb_outputs = (
    st.fixed_dictionaries(
        {
            "output_type": st.sampled_from(
                ["stream", "display_data", "execute_result", "error", "x"]
            )
        },
        optional={
            "name": st.sampled_from(["stdout", "stderr"]) | json_values,
            "text": st.text(max_size=20) | st.lists(st.text(max_size=8), max_size=3) | json_values,
            "data": mime_bundles | json_values,
            "metadata": json_values,
            "execution_count": st.integers() | json_values,
            "ename": json_values,
            "traceback": st.lists(st.text(max_size=8), max_size=2) | json_values,
        },
    )
    | json_values
)
ipynb_cells = (
    st.fixed_dictionaries(
        {"cell_type": st.sampled_from(["code", "markdown", "raw", "heading"]) | json_values},
        optional={
            "id": st.sampled_from(["a", "a", "bad id!", "x" * 80]) | json_values,
            "source": st.text(max_size=30)
            | st.lists(st.text(max_size=8), max_size=3)
            | json_values,
            "outputs": st.lists(ipynb_outputs, max_size=3) | json_values,
            "execution_count": st.integers() | json_values,
            "metadata": st.dictionaries(st.text(max_size=6), json_values, max_size=3) | json_values,
            "attachments": st.dictionaries(st.text(max_size=6), mime_bundles, max_size=2),
        },
    )
    | json_values
)
ipynb_notebooks = st.fixed_dictionaries(
    {"cells": st.lists(ipynb_cells, max_size=4)},
    optional={
        "nbformat": st.sampled_from([4, 4, 3, 5]) | json_values,
        "nbformat_minor": st.integers(min_value=0, max_value=10) | json_values,
        "metadata": st.fixed_dictionaries(
            {}, optional={"kernelspec": json_values, "language_info": json_values}
        )
        | json_values,
    },
)
ipynb_texts = st.builds(lambda nb: json.dumps(nb, allow_nan=True), ipynb_notebooks) | st.text(
    max_size=40
)


def test_fuzz_imported_ipynb_files(server, root_dir, jp_asyncio_loop):
    """Any file opens (repaired, 200) or is refused (422); what opens saves and exports valid."""
    write_notebook(root_dir / "nb.ipynb", ["x = 1", "y = 2"])
    run(jp_asyncio_loop, server.http.get(NB))  # a bystander document, checked at the end
    statuses: Counter[int] = Counter()
    counter = iter(range(10**6))

    async def open_and_check(text: str) -> int:
        name = f"imported-{next(counter)}.ipynb"
        (root_dir / name).write_text(text)
        route = f"/api/cocalc-sync/notebooks/{name}"
        response = await server.http.get(route)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            export = await server.http.get(route + "/export")
            assert export.status_code == 200, export.text
            nbformat.validate(nbformat.reads(export.text, as_version=4))
            edit = {"set": [{"type": "cell", "id": "fuzz-new", "input": "z", "pos": 99}]}
            assert (await server.http.post(route + "/records", json=edit)).status_code == 200
        return response.status_code

    @settings(FUZZ, max_examples=120)
    @given(text=ipynb_texts)
    def open_file(text):
        statuses[run(jp_asyncio_loop, open_and_check(text))] += 1

    open_file()
    print(f"imported .ipynb files tried: {sum(statuses.values())}, statuses: {dict(statuses)}")
    assert statuses[200] > 0
    run(jp_asyncio_loop, assert_document_healthy(server, root_dir))
