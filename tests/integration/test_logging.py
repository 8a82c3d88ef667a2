"""The package's log lines reach the server's log with its level letter and time, INFO ones
included (module loggers without a handler printed bare warnings and dropped INFO)."""

from __future__ import annotations

import re

import pytest
from helpers import Server, poll, write_notebook
from servers import ServerProcess

pytestmark = pytest.mark.timeout(120)

#: jupyter_server's log format: ``[I 2026-12-06 16:04:27.240 <logger>] <message>``
OPENED = re.compile(
    r"^\[I \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} jupyter_cocalc_sync\.documents\.manager\] "
    r"opened nb\.ipynb ",
    re.M,
)


async def test_an_info_line_of_a_module_logger_reaches_the_server_log(tmp_path):
    root = tmp_path / "root"
    write_notebook(root / "nb.ipynb", ["1"])
    # (no pooled kernel: nothing runs code)
    server = ServerProcess(root, tmp_path / "state", config={"KernelPool": {"size": 0}}).start()
    srv = Server(server.url, server.token)
    try:
        reply = await srv.http.get("/api/cocalc-sync/notebooks/nb.ipynb")
        assert reply.status_code == 200

        async def logged() -> bool:
            return OPENED.search(server.log()) is not None

        await poll(logged, timeout=30)
    finally:
        await srv.aclose()
        server.stop()
