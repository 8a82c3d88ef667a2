"""Completion, introspection and kernel info on the notebook's kernel, without a kernel
websocket."""

from __future__ import annotations

import pytest
from helpers import write_notebook
from test_authorization import READ, WRITE, HeaderAuthorizer, as_user

NB = "/api/cocalc-sync/notebooks/nb.ipynb"


@pytest.fixture
def jp_server_config(jp_server_config):
    jp_server_config["ServerApp"]["authorizer_class"] = HeaderAuthorizer
    return jp_server_config


async def test_completion_inspection_and_kernel_info_start_the_notebooks_kernel(
    server, root_dir, live
):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    nb = await live()
    assert (await server.http.get("/api/sessions")).json() == []

    completion = await nb.complete("import o")
    assert "os" in completion["matches"]
    assert completion["cursor_end"] == len("import o")
    sessions = (await server.http.get("/api/sessions")).json()
    assert [s["path"] for s in sessions] == ["nb.ipynb"]  # the notebook's session kernel

    # a cursor inside the code: only what is before it counts
    inside = await nb.complete("import o; x = 1", cursor_pos=len("import o"))
    assert "os" in inside["matches"]

    inspected = await nb.inspect("len", 3)
    assert inspected["found"] is True
    assert "Return the number of items" in inspected["data"]["text/plain"]
    missing = await nb.inspect("no_such_name_anywhere", 5)
    assert missing["found"] is False

    info = await nb.kernel_info()
    assert info["language_info"]["name"] == "python"
    assert info["status"] == "ok"

    # the kernel is the one the notebook's cells run on
    await nb.run(["cell-0"])
    await nb.wait_idle()
    assert (await nb.inspect("x", 1))["found"] is True


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        ("/complete", {"cursor_pos": 1}, '"code" must be a string'),
        ("/complete", {"code": "abc", "cursor_pos": 4}, '"cursor_pos" must be from 0 to 3'),
        ("/complete", {"code": "abc", "cursor_pos": "1"}, "must be an integer"),
        ("/inspect", {"code": "len", "detail_level": 2}, '"detail_level" must be 0 or 1'),
    ],
)
async def test_bad_requests_answer_400_without_starting_a_kernel(
    server, root_dir, route, body, message
):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    reply = await server.http.post(NB + route, json=body)
    assert reply.status_code == 400
    assert message in reply.json()["message"]
    assert (await server.http.get("/api/sessions")).json() == []


async def test_kernel_requests_need_execute(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    user = as_user(server, READ, WRITE)
    try:
        for method, route, body in [
            ("POST", "/complete", {"code": "import o"}),
            ("POST", "/inspect", {"code": "len"}),
            ("GET", "/kernel_info", None),
        ]:
            reply = await user.http.request(method, NB + route, json=body)
            assert reply.status_code == 403, route
        assert (await server.http.get("/api/sessions")).json() == []
    finally:
        await user.aclose()
