"""jupyter-server-nbmodel's execution API (``POST /api/kernels/{id}/execute`` with ``code`` and
``metadata``, then polling the request): runs reach the table, JupyterLab, the file and history."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import eventually, poll, read_notebook_file, write_notebook
from pycrdt import Map

NB = "/api/cocalc-sync/notebooks/nb.ipynb"

pytestmark = pytest.mark.cocalc(document_cleanup_delay=30)


async def kernel_of(server, path: str = "nb.ipynb") -> str:
    body = {"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}}
    session = (await server.http.post("/api/sessions", json=body)).json()
    return str(session["kernel"]["id"])


async def submit(server, kernel_id: str, code: str, document_id: str, cell_id: str):
    metadata = {"document_id": document_id, "cell_id": cell_id}
    return await server.http.post(
        f"/api/kernels/{kernel_id}/execute", json={"code": code, "metadata": metadata}
    )


async def result_of(server, location: str, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """Poll the request until it is not pending (202) any more."""
    answers: list[tuple[int, dict[str, Any]]] = []

    async def over() -> bool:
        reply = await server.http.get(location)
        answers.append((reply.status_code, reply.json()))
        return reply.status_code != 202

    await poll(over, timeout=timeout, every=0.05)
    return answers[-1]


def lab_outputs(lab, index: int) -> list[dict]:
    return [o.to_py() if isinstance(o, Map) else o for o in lab.ycells[index]["outputs"]]


async def test_a_request_runs_the_cell_and_everyone_sees_its_outputs(
    server, root_dir, jp_serverapp
):
    write_notebook(root_dir / "nb.ipynb", ["", "x = 1"])
    kernel_id = await kernel_of(server)
    me = (await server.http.get("/api/me")).json()["identity"]["username"]
    async with server.ynotebook("nb.ipynb") as lab:
        session = await server.session("nb.ipynb")
        document_id = f"json:notebook:{session['fileId']}"
        # the client writes the code into the cell and asks for the run at once: the request
        # waits for the edit to reach the table
        lab.ycells[0]["source"] += "print(6 * 7)\n21 * 2"
        reply = await submit(server, kernel_id, "print(6 * 7)\n21 * 2", document_id, "cell-0")
        assert reply.status_code == 202, reply.text
        location = reply.headers["Location"]
        assert location == reply.json()["request_url"]
        assert location.startswith(f"/api/kernels/{kernel_id}/requests/")

        status, body = await result_of(server, location)
        assert status == 200, body
        assert body["status"] == "ok" and body["request_status"] == "complete"
        assert body["execution_count"] == 1 and body["cell_id"] == "cell-0"
        outputs = json.loads(body["outputs"])
        assert outputs[0] == {"output_type": "stream", "name": "stdout", "text": "42\n"}
        assert outputs[1]["data"]["text/plain"] == "42"
        # read once, then forgotten (as nbmodel)
        assert (await server.http.get(location)).status_code == 404

        # JupyterLab shows the outputs, the REST records have them, and so does the file
        await eventually(lambda: len(lab_outputs(lab, 0)) == 2, lab.ydoc)
        assert lab.ycells[0]["execution_count"] == 1
        records = (await server.http.get(NB)).json()["records"]
        record = next(r for r in records if r.get("id") == "cell-0")
        assert record["exec_count"] == 1 and record["state"] == "idle"

        def saved():
            nb = read_notebook_file(root_dir / "nb.ipynb")
            return nb is not None and nb.cells[0].get("execution_count") == 1 and nb

        nb = await eventually(saved)
        assert nb.cells[0].outputs[0]["text"] == "42\n"
        # history: the run was made for the user who asked
        await jp_serverapp.web_app.settings["cocalc_sync"].changelog.flushed()
        versions = (await server.http.get(NB + "/history")).json()["versions"]
        assert versions[-1]["author"] == me

        # an error is a completed run with status "error"
        lab.ycells[1]["source"] += "\n1 / 0"
        reply = await submit(server, kernel_id, "x = 1\n1 / 0", document_id, "cell-1")
        status, body = await result_of(server, reply.headers["Location"])
        assert status == 200 and body["status"] == "error"
        assert json.loads(body["outputs"])[-1]["ename"] == "ZeroDivisionError"


# (nbmodel answers 500 for a request that never ran; jupyter_server logs every 500 as an error)
@pytest.mark.expect_errors(r"500 GET /\S+/api/kernels/[\w-]+/requests/")
async def test_input_cancel_and_bad_requests(server, root_dir, monkeypatch):
    from jupyter_cocalc_sync.execution import requests

    monkeypatch.setattr(requests, "SETTLE_TIMEOUT", 0.5)
    code_input = "name = input('who? ')\nprint('hi', name)"
    code_sleep = "import time\nfor _ in range(600): time.sleep(0.1)"
    write_notebook(root_dir / "nb.ipynb", [code_input, code_sleep, "print('queued')"])
    kernel_id = await kernel_of(server)
    session = await server.session("nb.ipynb")
    document_id = f"json:notebook:{session['fileId']}"
    execute = f"/api/kernels/{kernel_id}/execute"

    # input(): the poll answers 300 with the prompt, and POST …/input answers it
    reply = await submit(server, kernel_id, code_input, document_id, "cell-0")
    location = reply.headers["Location"]
    status, body = await result_of(server, location)
    assert status == 300, body
    assert body["input_request"]["prompt"] == "who? "
    assert body["request_status"] == "input"
    answer = await server.http.post(f"/api/kernels/{kernel_id}/input", json={"input": "ada"})
    assert answer.status_code == 201
    status, body = await result_of(server, location)
    assert status == 200 and "hi ada\n" in "".join(
        o.get("text", "") for o in json.loads(body["outputs"])
    )
    nothing_waits = await server.http.post(f"/api/kernels/{kernel_id}/input", json={"input": "x"})
    assert nothing_waits.status_code == 409

    # DELETE stops a running request (the run ends with the interrupt) and a queued one
    running = (await submit(server, kernel_id, code_sleep, document_id, "cell-1")).headers
    queued = (await submit(server, kernel_id, "print('queued')", document_id, "cell-2")).headers
    listed = (await server.http.get(execute)).json()["requests"]
    assert {r["cell_id"] for r in listed} == {"cell-1", "cell-2"}

    async def running_now() -> bool:
        reply = await server.http.get(running["Location"])
        return reply.status_code == 202 and reply.json()["request_status"] == "running"

    await poll(running_now, timeout=60)
    assert (await server.http.delete(queued["Location"])).status_code == 204
    assert (await server.http.delete(running["Location"])).status_code == 204
    status, body = await result_of(server, running["Location"])
    assert status == 200 and body["status"] == "error"
    assert json.loads(body["outputs"])[-1]["ename"] == "KeyboardInterrupt"
    status, body = await result_of(server, queued["Location"])
    assert status == 500 and body["error"] == "Execution cancelled."
    assert (await server.http.get(NB)).json()["records"]

    # bad requests change nothing
    unknown = await server.http.post(
        "/api/kernels/00000000-0000-0000-0000-000000000000/execute",
        json={"code": "1", "metadata": {"document_id": document_id, "cell_id": "cell-2"}},
    )
    assert unknown.status_code == 404
    missing = f"/api/kernels/{kernel_id}/requests/00000000-0000-0000-0000-000000000000"
    assert (await server.http.get(missing)).status_code == 404
    assert (await server.http.delete(missing)).status_code == 404
    other_code = await submit(server, kernel_id, "print('not the cell')", document_id, "cell-2")
    assert other_code.status_code == 409
    no_cell = await submit(server, kernel_id, "1", document_id, "no-such-cell")
    assert no_cell.status_code == 404
    no_document = await server.http.post(execute, json={"code": "1"})
    assert no_document.status_code == 400
    for body in ({"code": 1}, {"code": "1", "metadata": []}, {"cell_id": 3}):
        assert (await server.http.post(execute, json=body)).status_code == 400
    records = (await server.http.get(NB)).json()["records"]
    cell2 = next(r for r in records if r.get("id") == "cell-2")
    assert cell2["input"] == "print('queued')" and not cell2.get("output")
