"""jupyter-nbmodel-client edits a notebook over the collaboration room, and runs a cell with
jupyter-kernel-client (the client runs it and writes the outputs into the document)."""

from __future__ import annotations

import asyncio

import pytest
from agreement import authors, everyone_agrees
from helpers import eventually, read_notebook_file, write_notebook
from jupyter_kernel_client import JupyterKernelClient
from jupyter_nbmodel_client import NbModelClient, get_jupyter_notebook_websocket_url

pytestmark = pytest.mark.cocalc(document_cleanup_delay=30)


async def test_nbmodel_client_edits_and_runs_a_cell(server, root_dir, jp_serverapp):
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2", "c = 3"])
    user = (await server.http.get("/api/me")).json()["identity"]["username"]
    # the client logged in as that user (a token alone makes a new anonymous user per request)
    login = {"Cookie": "; ".join(f"{k}={v}" for k, v in server.http.cookies.items())}
    # (the two clients are synchronous where they speak HTTP or drive the kernel: in threads,
    # as the in-process server shares this event loop)
    url = await asyncio.to_thread(
        get_jupyter_notebook_websocket_url,
        server.base_url,
        "nb.ipynb",
        server.token,
        headers=login,
    )
    async with NbModelClient(url, additional_headers=login) as nb:
        assert nb.synced and len(nb) == 3
        nb.insert_markdown_cell(0, "# Title")
        nb.add_code_cell("print(6 * 7)")
        nb.set_cell_source(1, "a = 10")
        nb.set_cell_metadata(1, "tags", ["edited"])
        nb.delete_cell(2)  # "b = 2"
        expected = ["# Title", "a = 10", "c = 3", "print(6 * 7)"]
        await everyone_agrees(server, root_dir, "nb.ipynb", expected)

        kernel = JupyterKernelClient(server_url=server.base_url, token=server.token)
        await asyncio.to_thread(kernel.start)
        try:
            # As JupyterLab does on connecting: a kernel_info round trip, whose idle status
            # shows the websocket's iopub subscription is live. ZeroMQ drops what a kernel
            # publishes before a new subscription has joined, and jupyter_server skips its own
            # check of that ("nudge") for a kernel it thinks busy: a cell run at once could
            # lose its first messages, its output among them (seen once under load).
            assert (await asyncio.to_thread(lambda: kernel.kernel_info))["status"] == "ok"
            result = await asyncio.to_thread(nb.execute_cell, 3, kernel, timeout=60)
        finally:
            await asyncio.to_thread(kernel.stop)
        assert result["status"] == "ok"
        assert result["outputs"][0]["text"] == "42\n"

    def saved():
        file = read_notebook_file(root_dir / "nb.ipynb")
        return file is not None and file.cells[3].outputs and file

    file = await eventually(saved)
    assert file.cells[3].outputs[0]["text"] == "42\n"
    assert file.cells[1].metadata["tags"] == ["edited"]
    records = (await server.http.get("/api/cocalc-sync/notebooks/nb.ipynb")).json()["records"]
    ran = next(r for r in records if r.get("input") == "print(6 * 7)")
    assert ran["output"]["0"]["text"] == "42\n"
    assert user in await authors(server, jp_serverapp, "nb.ipynb")
