"""Errors the catch-alls that must stay broad caught: logged once, counted by place, reported by
``GET /api/cocalc-sync/status``; and the log reading that fails a test on a server's errors."""

from __future__ import annotations

import pytest
from helpers import write_notebook

from jupyter_cocalc_sync._version import __version__

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
STATUS = "/api/cocalc-sync/status"


def extension(jp_serverapp):
    return jp_serverapp.web_app.settings["cocalc_sync"]


async def test_status_reports_the_version_and_the_open_documents(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    before = (await server.http.get(STATUS)).json()
    assert before["version"] == __version__
    assert before["documents"] == {"notebooks": 0, "files": 0}
    assert isinstance(before["errors"], dict)
    await server.http.get(NB)
    after = (await server.http.get(STATUS)).json()
    assert after["documents"] == {"notebooks": 1, "files": 0}


@pytest.mark.expect_errors(r"\[syncdb\.change_listener\]: LookupError: it fails on purpose")
async def test_a_failing_listener_is_logged_counted_and_the_change_goes_on(
    server, root_dir, jp_serverapp
):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    await server.http.get(NB)
    document = next(iter(extension(jp_serverapp).documents.documents.values()))

    def failing(event: object) -> None:
        raise LookupError("it fails on purpose")

    document.db.on_change(failing)
    before = (await server.http.get(STATUS)).json()["errors"].get("syncdb.change_listener", 0)
    change = {"set": [{"type": "cell", "id": "cell-0", "input": "x = 2"}]}
    assert (await server.http.post(NB + "/records", json=change)).status_code == 200
    records = (await server.http.get(NB)).json()["records"]
    assert next(r for r in records if r["id"] == "cell-0")["input"] == "x = 2"
    errors = (await server.http.get(STATUS)).json()["errors"]
    assert errors["syncdb.change_listener"] == before + 1
