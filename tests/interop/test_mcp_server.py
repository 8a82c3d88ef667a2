"""jupyter-mcp-server, driven over stdio by the ``mcp`` client library as an AI agent drives it:
it inserts, runs and reads cells, through the collaboration room and the kernel websocket, and
with ``JUPYTER_MCP_EXECUTE_VIA_HTTP`` through jupyter-server-nbmodel's execution API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from agreement import authors, everyone_agrees
from helpers import eventually, read_notebook_file, write_notebook
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

#: made by tests/run.sh from tests/interop/requirements-mcp.txt
MCP_SERVER = Path(__file__).resolve().parents[2] / ".venv-mcp" / "bin" / "jupyter-mcp-server"
TOOL_TIMEOUT = 120.0

pytestmark = [pytest.mark.cocalc(document_cleanup_delay=30), pytest.mark.slow]


def text_of(result: Any) -> str:
    assert not result.is_error, result
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def drive(server, *, via_http: bool, steps) -> None:
    """Start jupyter-mcp-server on the notebook and hand ``steps`` an MCP session."""
    assert MCP_SERVER.exists(), f"{MCP_SERVER} is missing: bash tests/run.sh installs it"
    env = {
        **os.environ,
        "JUPYTER_URL": server.base_url,
        "JUPYTER_TOKEN": server.token,
        "DOCUMENT_ID": "nb.ipynb",
        "JUPYTERLAB": "false",
        "JUPYTER_MCP_EXECUTE_VIA_HTTP": "true" if via_http else "false",
        "PYTHONPATH": "",  # (its own environment, not this checkout's)
    }
    params = StdioServerParameters(command=str(MCP_SERVER), args=["start"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await steps(session)


@pytest.mark.parametrize("via_http", [False, True], ids=["websocket", "http"])
async def test_mcp_server_inserts_runs_and_reads_cells(server, root_dir, jp_serverapp, via_http):
    write_notebook(root_dir / "nb.ipynb", ["a = 6"])

    async def steps(session: ClientSession) -> None:
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert {"insert_cell", "execute_cell", "read_cell"} <= names, names

        async def call(name: str, **arguments: Any) -> str:
            result = await session.call_tool(name, arguments, read_timeout_seconds=TOOL_TIMEOUT)
            return text_of(result)

        await call("insert_cell", cell_index=1, cell_type="code", cell_source="print(a * 7)")
        await call("insert_cell", cell_index=0, cell_type="markdown", cell_source="# Title")
        await call("execute_cell", cell_index=1)  # a = 6
        output = await call("execute_cell", cell_index=2)
        assert "42" in output
        assert "print(a * 7)" in await call("read_cell", cell_index=2)

    await drive(server, via_http=via_http, steps=steps)
    await everyone_agrees(server, root_dir, "nb.ipynb", ["# Title", "a = 6", "print(a * 7)"])

    def ran():
        nb = read_notebook_file(root_dir / "nb.ipynb")
        return nb is not None and nb.cells[2].outputs and nb

    nb = await eventually(ran)
    assert nb.cells[2].outputs[0]["text"] == "42\n"
    assert nb.cells[2].execution_count == 2
    named = await authors(server, jp_serverapp, "nb.ipynb") - {"file", None}
    assert named, "the history names no client"
