"""Server-side execution with real kernels: entry points, queue rules, stdin, kernel death."""

from __future__ import annotations

import json

import nbformat
import pytest
from helpers import (
    cell,
    cell_sources,
    eventually,
    finished,
    outputs,
    poll,
    read_notebook_file,
    text_of,
    write_notebook,
)
from pycrdt import Map

NB = "/api/cocalc-sync/notebooks/nb.ipynb"


pytestmark = pytest.mark.cocalc(document_cleanup_delay=0.5)


@pytest.mark.pool
async def test_every_entry_point_runs_on_the_server_and_outputs_reach_everyone(
    server, root_dir, live
):
    write_notebook(
        root_dir / "nb.ipynb",
        ["a = 6 * 7\nprint(a)", "print(a + 1)", "a * 2", "print('via client')"],
    )

    async def pool_ready():
        pool = (await server.http.get("/api/cocalc-sync/kernels")).json()["pool"]
        return any(k["ready"] for k in pool["kernels"].values())

    await poll(pool_ready, timeout=60)  # a warm pool, as a server that has been up a while
    watcher = await live()  # a second SyncDB client that only watches
    actor = await live()
    async with server.ynotebook("nb.ipynb") as lab:
        # 1. a client sets state "start" on the record
        actor.set({"type": "cell", "id": "cell-0", "state": "start"})
        actor.commit()
        await watcher.wait_for(lambda nb: finished(nb, "cell-0"))
        first = cell(watcher, "cell-0")
        assert text_of(first) == "42\n"
        assert first["exec_count"] == 1  # a pooled kernel: the user's first cell is In [1]
        pool = (await server.http.get("/api/cocalc-sync/kernels")).json()["pool"]
        counters = pool["counters"]  # the runner's session took the pooled kernel
        assert counters.get("claimed", 0) + counters.get("taken_while_starting", 0) >= 1
        assert first["end"] >= first["start"]

        # 2. REST /run
        reply = await server.http.post(NB + "/run", json={"cell_ids": ["cell-1"]})
        assert reply.status_code == 202
        await watcher.wait_for(lambda nb: finished(nb, "cell-1"))
        assert text_of(cell(watcher, "cell-1")) == "43\n"

        # 3. JupyterLab's NotebookCellServerExecutor: text/plain body, kernel id in the URL
        session = (await server.http.get("/api/sessions")).json()
        kernel_id = next(s["kernel"]["id"] for s in session if s["path"] == "nb.ipynb")
        reply = await server.http.post(
            f"/api/kernels/{kernel_id}/execute?1700000000000",
            content=json.dumps(
                {"cell_id": "cell-2", "document_id": f"json:notebook:{watcher.file_id}"}
            ),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        assert reply.status_code == 200
        await watcher.wait_for(lambda nb: finished(nb, "cell-2"))
        result = outputs(cell(watcher, "cell-2"))
        assert (
            result[0]["output_type"] == "execute_result" and result[0]["data"]["text/plain"] == "84"
        )

        # 4. the Python client
        assert await actor.run(["cell-3"]) == ["cell-3"]
        await actor.wait_idle(["cell-3"])
        await watcher.wait_for(lambda nb: text_of(cell(nb, "cell-3")) == "via client\n")

        # the JupyterLab client saw every output and the execution counts
        def lab_outputs():
            cells = lab.ycells
            return [[o.to_py() if isinstance(o, Map) else o for o in c["outputs"]] for c in cells]

        await eventually(lambda: len(lab_outputs()[3]) == 1, lab.ydoc)
        assert str(lab_outputs()[0][0]["text"]) == "42\n"
        assert lab.ycells[0]["execution_count"] == 1
        assert lab_outputs()[2][0]["data"]["text/plain"] == "84"

    # and the saved file
    def saved():
        nb = read_notebook_file(root_dir / "nb.ipynb")
        return nb if nb is not None and len(nb.cells[3].outputs) == 1 else None

    nb = await eventually(saved, timeout=10)
    nbformat.validate(nb)
    assert nb.cells[0].execution_count == 1 and nb.cells[0].outputs[0].text == "42\n"
    assert nb.cells[2].outputs[0].data["text/plain"] == "84"


async def test_outputs_keep_arriving_and_are_saved_after_every_client_left(server, root_dir, live):
    code = (
        "import time\nfor i in range(30):\n    print(f'line {i}', flush=True)\n    time.sleep(0.2)"
    )
    write_notebook(root_dir / "nb.ipynb", [code])
    nb = await live()
    nb.set({"type": "cell", "id": "cell-0", "state": "start"})
    nb.commit()
    await nb.wait_for(lambda n: "line 3" in text_of(cell(n, "cell-0")))
    await nb.close()  # every client is gone; the cell goes on for ~5 s

    expected = "".join(f"line {i}\n" for i in range(30))

    def saved():
        saved_nb = read_notebook_file(root_dir / "nb.ipynb")
        return (
            saved_nb is not None
            and saved_nb.cells[0].outputs
            and (saved_nb.cells[0].outputs[0].text == expected)
        )

    await eventually(saved, timeout=30)


async def test_interrupt_stops_the_cell_and_drops_the_queue(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["while True:\n    pass", "never = 1\nprint('ran')"])
    nb = await live()
    await nb.run(["cell-0", "cell-1"])
    await nb.wait_for(lambda n: cell(n, "cell-0").get("state") == "busy")
    assert cell(nb, "cell-1").get("state") == "run"
    await nb.interrupt()
    await nb.wait_for(lambda n: finished(n, "cell-0"))
    errors = [o for o in outputs(cell(nb, "cell-0")) if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "KeyboardInterrupt"
    await nb.wait_idle()
    assert (
        cell(nb, "cell-1").get("output") in (None, {})
        and cell(nb, "cell-1").get("exec_count") is None
    )


async def test_halt_on_error_stops_the_queue(server, root_dir, live):
    write_notebook(
        root_dir / "nb.ipynb", ["x = 1", "raise ValueError('stop here')", "print('after')"]
    )
    nb = await live()
    await nb.run_all()
    await nb.wait_for(lambda n: finished(n, "cell-1"))
    await nb.wait_idle()
    assert outputs(cell(nb, "cell-1"))[0]["ename"] == "ValueError"
    assert not outputs(cell(nb, "cell-2"))


async def test_a_dying_kernel_ends_its_cell_and_the_next_run_works(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["import os\nos._exit(1)", "print('alive')"])
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_for(lambda n: finished(n, "cell-0"), timeout=60)
    error = outputs(cell(nb, "cell-0"))[-1]
    assert error["output_type"] == "error" and error["ename"] == "DeadKernelError"
    settings = nb.get_one({"type": "settings", "id": "main"})
    assert settings.get("kernel_error")
    await nb.run(["cell-1"])
    await nb.wait_for(lambda n: finished(n, "cell-1"), timeout=90)
    assert text_of(cell(nb, "cell-1")) == "alive\n"
    settings = nb.get_one({"type": "settings", "id": "main"})
    assert settings.get("backend_state") == "running" and not settings.get("kernel_error")


async def test_input_is_answered_by_another_client(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["name = input('Name: ')\nprint('hello', name)"])
    runner_client = await live()
    helper = await live()
    await runner_client.run(["cell-0"])

    def pending(nb):
        for key, message in (cell(nb, "cell-0").get("output") or {}).items():
            if message.get("output_type") == "input_request":
                return key, message
        return None

    key, message = await helper.wait_for(pending)
    assert message["prompt"] == "Name: " and message["password"] is False
    helper.set({"type": "cell", "id": "cell-0", "output": {key: {**message, "value": "Ada"}}})
    helper.commit()
    await runner_client.wait_for(lambda nb: finished(nb, "cell-0"))
    assert text_of(cell(runner_client, "cell-0")) == "Name: Ada\nhello Ada\n"


async def test_a_password_is_answered_over_rest_and_never_stored(server, root_dir, live):
    write_notebook(
        root_dir / "nb.ipynb",
        ["import getpass\nsecret = getpass.getpass('Password: ')\nprint(len(secret))"],
    )
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_for(lambda n: any(o.get("password") for o in outputs(cell(n, "cell-0"))))
    await nb.answer_input("cell-0", "hunter2-secret")
    await nb.wait_for(lambda n: finished(n, "cell-0"))
    assert text_of(cell(nb, "cell-0")) == "Password: \n14\n"
    history = (await server.http.get(NB + "/history")).json()["versions"]
    for version in history:
        records = (await server.http.get(NB + f"/history/{version['version']}")).json()
        assert "hunter2-secret" not in json.dumps(records)


async def test_a_password_written_into_the_document_is_ignored(server, root_dir, live):
    """A password prompt waits for ``POST …/input``: an answer written into the shared document
    (and so into its history) is not used."""
    write_notebook(
        root_dir / "nb.ipynb",
        ["import getpass\nprint(len(getpass.getpass('Password: ')))"],
    )
    nb = await live()
    await nb.run(["cell-0"])

    def pending(n):
        for key, message in (cell(n, "cell-0").get("output") or {}).items():
            if message.get("output_type") == "input_request" and message.get("password"):
                return key, message
        return None

    key, message = await nb.wait_for(pending)
    typed = {**message, "value": "typed into the document"}
    nb.set({"type": "cell", "id": "cell-0", "output": {key: typed}})
    nb.commit()
    await nb.sync()  # the server has applied the write: had it answered, nothing would be pending
    await nb.answer_input("cell-0", "hunter2")
    await nb.wait_for(lambda n: finished(n, "cell-0"))
    assert text_of(cell(nb, "cell-0")) == "Password: \n7\n"


async def test_update_display_reaches_a_display_in_an_earlier_cell(server, root_dir, live):
    write_notebook(
        root_dir / "nb.ipynb",
        ["h = display('start', display_id=True)", "h.update('updated from cell 2')"],
    )
    nb = await live()
    await nb.run(["cell-0", "cell-1"])
    await nb.wait_idle()
    shown = outputs(cell(nb, "cell-0"))
    assert shown[0]["data"]["text/plain"] == "'updated from cell 2'"
    assert not outputs(cell(nb, "cell-1"))


async def test_restart_clear_and_run_all(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["x = 5", "print(x)"])
    nb = await live()
    await nb.run_all()
    await nb.wait_for(lambda n: finished(n, "cell-1"))
    assert cell(nb, "cell-1")["exec_count"] == 2
    await nb.restart(clear=True)
    await nb.wait_for(lambda n: not cell(n, "cell-1").get("output"))
    await nb.restart(run_all=True)
    await nb.wait_for(lambda n: text_of(cell(n, "cell-1")) == "5\n" and finished(n, "cell-1"))
    assert cell(nb, "cell-1")["exec_count"] == 2  # a new kernel counts from 1 again


async def test_run_requests_for_markdown_and_unknown_cells(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", [nbformat.v4.new_markdown_cell("# title", id="md")])
    bad = await server.http.post(NB + "/run", json={"cell_ids": ["nope"]})
    assert bad.status_code == 400 and "nope" in bad.json()["message"]
    missing = await server.http.post(NB + "/run", json={})
    assert missing.status_code == 400
    ok = await server.http.post(NB + "/run", json={"cell_ids": ["md"]})
    assert ok.status_code == 202 and ok.json()["queued"] == []


async def test_projection_shows_running_state_to_jupyterlab(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["import time; time.sleep(1); print('done')"])
    nb = await live()
    async with server.ynotebook("nb.ipynb") as lab:
        await nb.run(["cell-0"])
        await eventually(lambda: lab.ycells[0]["execution_state"] == "running", lab.ydoc)
        await eventually(lambda: lab.ycells[0]["execution_state"] == "idle", lab.ydoc, timeout=30)
        assert cell_sources(lab) == ["import time; time.sleep(1); print('done')"]


async def test_more_output_route(server, root_dir, live, cocalc_config):
    write_notebook(root_dir / "nb.ipynb", ["for i in range(100000): print(i)"])
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_for(lambda n: finished(n, "cell-0"), timeout=120)
    visible = outputs(cell(nb, "cell-0"))
    assert visible[-1] == {"more_output": True}
    length = len(json.dumps(cell(nb, "cell-0")["output"], separators=(",", ":")))
    assert length <= 250_000 + len('"9":{"more_output":true},')
    more = await nb.more_output("cell-0")
    text = text_of({"output": {str(i): o for i, o in enumerate(visible[:-1])}}) + "".join(
        m["text"] for m in more["messages"]
    )
    assert text == "".join(f"{i}\n" for i in range(100000))
    assert more["truncated"] == more["discarded"] == 0
    missing = await server.http.get(NB + "/cells/nope/more_output")
    assert missing.status_code == 404
    await poll(lambda: _saved_all(root_dir), timeout=20)


async def _saved_all(root_dir) -> bool:
    nb = read_notebook_file(root_dir / "nb.ipynb")
    return (
        nb is not None
        and bool(nb.cells[0].outputs)
        and nb.cells[0].outputs[0].get("text", "").endswith("99999\n")
    )
