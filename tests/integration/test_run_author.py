"""Commits the runner makes carry the name of the user who asked for the run."""

from __future__ import annotations

import pytest
from helpers import write_notebook

NB = "/api/cocalc-sync/notebooks/nb.ipynb"

pytestmark = pytest.mark.cocalc(document_cleanup_delay=30)


def finished(nb, cell_id: str) -> bool:
    record = nb.get_one({"type": "cell", "id": cell_id}) or {}
    return record.get("state") == "idle" and record.get("end") is not None


async def username(http) -> str:
    return (await http.get("/api/me")).json()["identity"]["username"]


async def test_history_shows_who_ran_each_cell(server, root_dir, live, jp_serverapp):
    write_notebook(root_dir / "nb.ipynb", ["print(1)", "print(2)", "print(3)"])
    nb = await live()  # a client of its own, so its user differs from the REST client's
    rest_user, client_user = await username(server.http), await username(nb.client.http)
    assert rest_user != client_user

    async def versions() -> list[dict]:
        return (await server.http.get(NB + "/history")).json()["versions"]

    async def authors_of_run(ask, cell_id: str) -> set[str | None]:
        before = len(await versions())
        await ask()
        await nb.wait_for(lambda n: finished(n, cell_id), timeout=60)
        await jp_serverapp.web_app.settings["cocalc_sync"].changelog.flushed()
        return {v["author"] for v in (await versions())[before:]}

    async def by_rest():
        response = await server.http.post(NB + "/run", json={"cell_ids": ["cell-0"]})
        assert response.status_code == 202

    async def by_client():
        nb.set({"type": "cell", "id": "cell-1", "state": "start"})
        nb.commit()

    async def by_jupyterlab():
        # JupyterLab's server-side executor names the document and the cell
        sessions = (await server.http.get("/api/sessions")).json()
        kernel_id = next(s["kernel"]["id"] for s in sessions if s["path"] == "nb.ipynb")
        response = await server.http.post(
            f"/api/kernels/{kernel_id}/execute",
            json={"cell_id": "cell-2", "document_id": f"json:notebook:{nb.file_id}"},
        )
        assert response.status_code == 200

    assert await authors_of_run(by_rest, "cell-0") == {rest_user}
    assert await authors_of_run(by_client, "cell-1") == {client_user}
    assert await authors_of_run(by_jupyterlab, "cell-2") == {rest_user}
