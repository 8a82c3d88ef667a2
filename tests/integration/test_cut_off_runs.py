"""A run the server does not see to its end — it stops (SIGTERM) or is killed while the cell
runs — ends with an error output saying so, after the outputs it printed, in the table and
in the file; it does not look finished."""

from __future__ import annotations

import json
import signal

import pytest
from helpers import Server, poll, read_notebook_file, write_notebook
from servers import ServerProcess

from jupyter_cocalc_sync.client import CocalcSyncClient
from jupyter_cocalc_sync.execution.cell_writes import CUT_OFF_ENAME, SERVER_GONE, SERVER_STOPPED

pytestmark = pytest.mark.timeout(180)

LONG_RUN = (
    "import time\nfor i in range(40):\n    print(f'line {i}', flush=True)\n    time.sleep(0.5)"
)
NB = "/api/cocalc-sync/notebooks/long.ipynb"


@pytest.fixture
def server_process(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    proc = ServerProcess(root, tmp_path / "state", config={"CocalcSync": {"autosave_delay": 0.2}})
    yield proc
    proc.kill()


async def start_run_and_wait_for_lines(server_process: ServerProcess) -> None:
    """Run the long cell until it printed a few lines, then close the client."""
    write_notebook(server_process.root / "long.ipynb", [LONG_RUN])
    server_process.start()
    srv = Server(server_process.url, server_process.token)
    client = CocalcSyncClient(srv.base_url, srv.token)
    nb = await client.open("long.ipynb")
    await nb.run(["cell-0"])
    await nb.wait_for(
        lambda n: "line 3" in json.dumps(n.get_one({"type": "cell", "id": "cell-0"}).get("output")),
        timeout=60,
    )
    await client.close()
    await srv.aclose()


def cut_off_error(outputs: list[dict]) -> dict | None:
    errors = [o for o in outputs if o.get("output_type") == "error"]
    return errors[-1] if errors and outputs[-1] is errors[-1] else None


def printed(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


async def records_after_restart(server_process: ServerProcess) -> dict:
    server_process.start()
    srv = Server(server_process.url, server_process.token)
    try:
        records = (await srv.http.get(NB)).json()["records"]
    finally:
        await srv.aclose()
    (record,) = [r for r in records if r["type"] == "cell"]
    return record


def ordered(record: dict) -> list[dict]:
    output = record.get("output") or {}
    return [output[k] for k in sorted(output, key=int) if output[k] is not None]


# the kernel, shut down by the stopping server in the middle of the cell, logs that it could
# not send the cell's reply
@pytest.mark.expect_errors(r"IPKernelApp\] ERROR \| Exception in message handler")
async def test_a_server_stop_cuts_the_run_off_with_an_error_in_the_file_and_the_table(
    server_process,
):
    await start_run_and_wait_for_lines(server_process)
    server_process.process.send_signal(signal.SIGTERM)
    server_process.process.wait(60)
    saved = read_notebook_file(server_process.root / "long.ipynb")
    outputs = saved.cells[0].outputs
    error = cut_off_error(outputs)
    assert error is not None, outputs
    assert error["ename"] == CUT_OFF_ENAME and error["evalue"] == SERVER_STOPPED
    assert printed(outputs).startswith("line 0\nline 1\nline 2\nline 3\n")
    assert "line 39" not in printed(outputs)

    record = await records_after_restart(server_process)
    assert record.get("state", "idle") == "idle"
    assert cut_off_error(ordered(record))["evalue"] == SERVER_STOPPED
    # one error: reopening does not cut it off again
    assert [o["output_type"] for o in ordered(record)].count("error") == 1


async def test_a_killed_server_says_so_in_the_cell_when_it_is_back(server_process):
    await start_run_and_wait_for_lines(server_process)
    server_process.kill()
    record = await records_after_restart(server_process)
    outputs = ordered(record)
    error = cut_off_error(outputs)
    assert error is not None, outputs
    assert error["ename"] == CUT_OFF_ENAME and error["evalue"] == SERVER_GONE
    assert record.get("state", "idle") == "idle"
    assert printed(outputs).startswith("line 0\nline 1\nline 2\nline 3\n")

    async def saved_error() -> dict | None:
        nb = read_notebook_file(server_process.root / "long.ipynb")
        return cut_off_error(nb.cells[0].outputs) if nb is not None else None

    error = await poll(saved_error, timeout=30)
    assert error["evalue"] == SERVER_GONE
