"""Remote kernels: a server with ``--gateway-url`` runs every notebook on the gateway's kernels.

A real ``jupyter_kernel_gateway`` on loopback and a real ``jupyter server`` with this extension
pointed at it (``GatewayClient.url``, what ``--gateway-url`` sets).
"""

from __future__ import annotations

import psutil
import pytest
from helpers import Server, cell, eventually, finished, outputs, text_of, write_notebook
from servers import GatewayProcess, ServerProcess

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
