"""Remote kernels: a server with ``--gateway-url`` runs every notebook on the gateway's kernels.

A real ``jupyter_kernel_gateway`` on loopback and a real ``jupyter server`` with this extension
pointed at it (``GatewayClient.url``, what ``--gateway-url`` sets).
"""

from __future__ import annotations

import asyncio
import hashlib

import jupyter_client.session
import psutil
import pytest
from helpers import Server, cell, eventually, finished, outputs, text_of, write_notebook
from httpx_ws import aconnect_ws
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    serialize_binary_message,
)
from servers import GatewayProcess, ServerProcess
from test_widgets import IMAGE, shown_model
from wsproto.events import BytesMessage

from jupyter_cocalc_sync.client import CocalcSyncClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory):
    state = tmp_path_factory.mktemp("gateway")
    gateway = GatewayProcess(state / "gateway").start()
    root = state / "root"
    root.mkdir()
    server = ServerProcess(root, state / "server", config={"GatewayClient": {"url": gateway.url}})
    try:
        server.start()
        yield gateway, server
    finally:
        server.stop()
        gateway.stop()


@pytest.fixture
def notebook(gateway_server, request, jp_asyncio_loop):
    """A live replica of a new notebook (named after the test) with the given cells."""
    _gateway, server = gateway_server
    path = f"{request.node.name}.ipynb"
    write_notebook(server.root / path, request.node.get_closest_marker("cells").args[0])
    client = CocalcSyncClient(server.url, server.token)
    yield jp_asyncio_loop.run_until_complete(client.open(path))
    jp_asyncio_loop.run_until_complete(client.close())


def test_the_server_starts_with_the_gateway_classes_and_says_the_pool_is_off(gateway_server):
    _gateway, server = gateway_server
    log = server.log()
    assert "Kernels run on the gateway at" in log and "the kernel pool is off" in log


@pytest.mark.cells(["import os\nprint(os.getpid(), os.getppid())"])
async def test_cells_run_on_the_gateways_kernel(gateway_server, notebook):
    gateway, server = gateway_server
    await notebook.run(["cell-0"])
    await notebook.wait_for(lambda nb: finished(nb, "cell-0"), timeout=120)
    pid, parent = map(int, text_of(cell(notebook, "cell-0")).split())
    assert parent == gateway.process.pid
    server_children = {p.pid for p in psutil.Process(server.process.pid).children(recursive=True)}
    assert pid not in server_children
    settings = notebook.get_one({"type": "settings", "id": "main"})
    assert settings["backend_state"] == "running" and not settings.get("kernel_error")


@pytest.mark.cells(["while True:\n    pass", "a = 1", "print('a' in globals())"])
async def test_interrupt_and_restart_reach_the_gateway_kernel(notebook):
    await notebook.run(["cell-0"])
    await notebook.wait_for(lambda nb: cell(nb, "cell-0").get("state") == "busy", timeout=120)
    await notebook.interrupt()
    await notebook.wait_for(lambda nb: finished(nb, "cell-0"))
    assert outputs(cell(notebook, "cell-0"))[-1]["ename"] == "KeyboardInterrupt"
    await notebook.run(["cell-1"])
    await notebook.wait_for(lambda nb: finished(nb, "cell-1"))
    await notebook.restart()
    await notebook.run(["cell-2"])
    await notebook.wait_for(lambda nb: finished(nb, "cell-2"), timeout=120)
    assert text_of(cell(notebook, "cell-2")) == "False\n"  # a new kernel process


@pytest.mark.cells(["import os\nos._exit(1)", "print('alive')"])
async def test_a_gateway_kernel_that_dies_is_reported_and_comes_back(notebook):
    await notebook.run(["cell-0"])
    await notebook.wait_for(lambda nb: finished(nb, "cell-0"), timeout=120)
    error = outputs(cell(notebook, "cell-0"))[-1]
    assert error["output_type"] == "error" and error["ename"] == "DeadKernelError"
    await notebook.run(["cell-1"])
    await notebook.wait_for(lambda nb: finished(nb, "cell-1"), timeout=120)
    assert text_of(cell(notebook, "cell-1")) == "alive\n"


@pytest.mark.cells(["name = input('Name: ')\nprint('hello', name)"])
async def test_input_reaches_a_gateway_kernel(notebook):
    await notebook.run(["cell-0"])

    def pending(nb):
        return any(o.get("output_type") == "input_request" for o in outputs(cell(nb, "cell-0")))

    await notebook.wait_for(pending, timeout=120)
    await notebook.answer_input("cell-0", "Ada")
    await notebook.wait_for(lambda nb: finished(nb, "cell-0"))
    assert text_of(cell(notebook, "cell-0")).endswith("hello Ada\n")


@pytest.mark.cells(["print(6 * 7)"])
async def test_jupyterlab_joins_the_gateway_notebook(gateway_server, notebook):
    _gateway, server = gateway_server
    srv = Server(server.url, server.token)
    try:
        async with srv.ynotebook(notebook.path) as ynb:
            await notebook.run(["cell-0"])
            await notebook.wait_for(lambda nb: finished(nb, "cell-0"), timeout=120)

            def shown() -> bool:
                cell_outputs = ynb.ycells[0]["outputs"]
                return len(cell_outputs) > 0 and "42" in str(cell_outputs[0])

            await eventually(shown, ynb.ydoc)
    finally:
        await srv.aclose()


IMAGE_BYTES = bytes(range(256)) * 4  # what the widget tests' IMAGE cell shows


async def image_buffer(notebook, image: str) -> bytes:
    """The bytes of the Image's ``value``, through the widget table and the blob store."""
    await notebook.widgets.wait_for(lambda w: image in w.models() and w.buffers(image))
    assert list(notebook.widgets.buffers(image)) == ['["value"]']
    (sha1,) = notebook.widgets.buffers(image).values()
    return await notebook.widgets.buffer(sha1)


@pytest.mark.cells([IMAGE])
async def test_widget_bytes_from_a_gateway_kernel_arrive_through_the_blob_store(notebook):
    await notebook.run(["cell-0"])
    await notebook.wait_for(lambda nb: finished(nb, "cell-0"), timeout=120)
    image = shown_model(cell(notebook, "cell-0"))
    assert await image_buffer(notebook, image) == IMAGE_BYTES
    assert "value" not in notebook.widgets.state(image)  # the bytes are not in the document


@pytest.mark.cells(
    [
        "from ipywidgets import Image\nimage = Image(value=b'x', format='png')\nimage",
        "import hashlib\nprint(len(image.value), hashlib.sha1(image.value).hexdigest())",
    ]
)
async def test_a_tabs_binary_widget_change_reaches_the_gateway_kernel(gateway_server, notebook):
    """JupyterLab's path for a change with a buffer: a ``comm_msg`` in a binary frame over the
    tab's own kernel websocket (the widget table has no buffers for clients to write). The
    kernel's echo of it comes back to the tab as a binary frame, and reaches the table over
    our own gateway connection."""
    _gateway, server = gateway_server
    await notebook.run(["cell-0"])
    await notebook.wait_for(lambda nb: finished(nb, "cell-0"), timeout=120)
    image = shown_model(cell(notebook, "cell-0"))
    assert await image_buffer(notebook, image) == b"x"

    srv = Server(server.url, server.token)
    try:
        sessions = (await srv.http.get("/api/sessions")).json()
        kernel_id = next(s["kernel"]["id"] for s in sessions if s["path"] == notebook.path)
        session = jupyter_client.session.Session()
        change = {"method": "update", "state": {}, "buffer_paths": [["value"]]}
        msg = session.msg("comm_msg", {"comm_id": image, "data": change})
        msg["channel"] = "shell"
        msg["buffers"] = [IMAGE_BYTES]
        url = srv.ws_url(f"/api/kernels/{kernel_id}/channels?session_id={session.session}")
        async with aconnect_ws(url, srv.http) as ws:
            await ws.send_bytes(serialize_binary_message(msg))
            echo = await binary_echo(ws, image)
    finally:
        await srv.aclose()
    assert echo["content"]["data"]["buffer_paths"] == [["value"]]
    assert [bytes(b) for b in echo["buffers"]] == [IMAGE_BYTES]

    await notebook.widgets.wait_for(lambda w: w.buffers(image)['["value"]'] != sha1(b"x"))
    assert await image_buffer(notebook, image) == IMAGE_BYTES
    await notebook.run(["cell-1"])
    await notebook.wait_for(lambda nb: finished(nb, "cell-1"), timeout=120)
    assert text_of(cell(notebook, "cell-1")) == f"{len(IMAGE_BYTES)} {sha1(IMAGE_BYTES)}\n"


async def binary_echo(ws, model_id: str, timeout: float = 60) -> dict:
    """The kernel's ``echo_update`` of ``model_id`` as the tab receives it (a binary frame)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await ws.receive()
            if not isinstance(event, BytesMessage):
                continue
            msg = deserialize_binary_message(event.data)
            data = msg["content"].get("data") or {}
            if msg["content"].get("comm_id") == model_id and data.get("method") == "echo_update":
                return msg


def sha1(raw: bytes) -> str:
    return hashlib.sha1(raw).hexdigest()
