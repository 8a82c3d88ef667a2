"""After a third-party client acted: JupyterLab, REST records, the file and history agree."""

from __future__ import annotations

from typing import Any

from helpers import cell_sources, eventually, read_notebook_file

from jupyter_cocalc_sync.format.ipynb import cell_order_key

NB = "/api/cocalc-sync/notebooks/"


async def everyone_agrees(server, root_dir, path: str, sources: list[str]) -> None:
    """A JupyterLab-like client over the room, the REST records and the saved file all hold
    cells with ``sources``, in order."""
    async with server.ynotebook(path) as lab:
        await eventually(lambda: cell_sources(lab) == sources, lab.ydoc)
    records = (await server.http.get(NB + path)).json()["records"]
    cells = sorted((r for r in records if r.get("type") == "cell"), key=cell_order_key)
    assert [c.get("input", "") for c in cells] == sources

    def saved() -> Any:
        nb = read_notebook_file(root_dir / path)
        return nb is not None and [c.source for c in nb.cells] == sources

    await eventually(saved)


async def authors(server, jp_serverapp, path: str) -> set[str | None]:
    """Who the notebook's history names."""
    await jp_serverapp.web_app.settings["cocalc_sync"].changelog.flushed()
    versions = (await server.http.get(NB + path + "/history")).json()["versions"]
    return {v["author"] for v in versions}
