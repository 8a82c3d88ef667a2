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

#: a warning of this extension's: its app's logger or a module's
OURS_WARNED = re.compile(r"^\[W [^\]]* (CocalcSync|jupyter_cocalc_sync[.\w]*)\] ")


async def test_a_module_loggers_info_line_reaches_the_server_log_and_a_start_warns_of_nothing(
    tmp_path,
):
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
        # a plain start warns of nothing (the stand-in jupyter_server_ydoc this extension
        # lists for other extensions was taken for the real one, and warned of at every start)
        warnings = [line for line in server.log().splitlines() if OURS_WARNED.match(line)]
        assert not warnings, warnings
    finally:
        await srv.aclose()
        server.stop()
