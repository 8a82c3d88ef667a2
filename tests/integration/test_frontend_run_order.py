"""JupyterLab's run requests (one ``POST /api/kernels/{id}/execute`` per cell) run in notebook
order however late they arrive, as long as the cells have not started."""

from __future__ import annotations

import json

import pytest
from helpers import cell, finished, write_notebook

pytestmark = pytest.mark.cocalc(document_cleanup_delay=0.5)

CELLS = ["name = input('Name: ')", "print('above')", "print('below')"]


async def test_a_late_request_goes_before_the_same_users_queued_cells_below_it(
    server, root_dir, live
):
    write_notebook(root_dir / "nb.ipynb", CELLS)
    nb = await live()
    kernel_id = await _wait_at_input(server, nb)
    # the request for the lower cell is queued before the upper one arrives (a run-all's
    # requests spread over a loaded machine)
    await _frontend_run(server.http, kernel_id, nb, "cell-2")
    await _frontend_run(server.http, kernel_id, nb, "cell-1")
    _answer_input(nb)
    await nb.wait_for(lambda n: all(finished(n, f"cell-{i}") for i in range(3)))
    assert [cell(nb, f"cell-{i}")["exec_count"] for i in range(3)] == [1, 2, 3]


async def test_another_users_queued_cell_keeps_its_place(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", CELLS)
    nb = await live()  # its user is not the REST client's
    kernel_id = await _wait_at_input(server, nb)
    await _frontend_run(server.http, kernel_id, nb, "cell-2")
    await _frontend_run(nb.client.http, kernel_id, nb, "cell-1")
    _answer_input(nb)
    await nb.wait_for(lambda n: all(finished(n, f"cell-{i}") for i in range(3)))
    assert [cell(nb, f"cell-{i}")["exec_count"] for i in range(3)] == [1, 3, 2]


async def _wait_at_input(server, nb) -> str:
    """Runs the first cell, which waits for its input; returns the notebook's kernel id."""
    await nb.run(["cell-0"])
    await nb.wait_for(lambda n: _input_request(n) is not None)
    sessions = (await server.http.get("/api/sessions")).json()
    return next(s["kernel"]["id"] for s in sessions if s["path"] == "nb.ipynb")


async def _frontend_run(http, kernel_id: str, nb, cell_id: str) -> None:
    """JupyterLab's ``NotebookCellServerExecutor`` asks for a run; returns once it is queued."""
    reply = await http.post(
        f"/api/kernels/{kernel_id}/execute",
        content=json.dumps({"cell_id": cell_id, "document_id": f"json:notebook:{nb.file_id}"}),
    )
    assert reply.status_code == 200, reply.text
    await nb.wait_for(lambda n: cell(n, cell_id).get("state") == "run")


def _input_request(nb) -> tuple[str, dict] | None:
    for key, message in (cell(nb, "cell-0").get("output") or {}).items():
        if message.get("output_type") == "input_request":
            return key, message
    return None


def _answer_input(nb) -> None:
    request = _input_request(nb)
    assert request is not None
    key, message = request
    nb.set({"type": "cell", "id": "cell-0", "output": {key: {**message, "value": "Ada"}}})
    nb.commit()
