"""Errors the catch-alls that must stay broad caught: logged once, counted by place, reported by
``GET /api/cocalc-sync/status``; and the log reading that fails a test on a server's errors."""

from __future__ import annotations

import pytest
import server_errors
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


def test_a_log_file_error_keeps_its_traceback_and_ends_at_the_next_record():
    lines = [
        "[I 2026-01-01 10:00:00.000 ServerApp] started",
        "[E 2026-01-01 10:00:01.000 ServerApp] saving x.ipynb failed [file.save]: OSError",
        "    Traceback (most recent call last):",
        "    OSError: disk full",
        "[W 2026-01-01 10:00:02.000 ServerApp] later",
        "Traceback (most recent call last):",
        '  File "kernel.py", line 1',
        "KeyError: 1",
    ]
    entries = server_errors.error_entries(lines)
    assert entries == ["\n".join(lines[1:4]), "\n".join(lines[5:])]


def test_only_declared_errors_are_allowed():
    entries = ["ERROR a: boom [room.message]", "ERROR b: other"]
    assert server_errors.unexpected(entries, [r"\[room\.message\]"]) == ["ERROR b: other"]
    assert server_errors.unexpected(entries, []) == entries
