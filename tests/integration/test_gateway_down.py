"""A kernel gateway that is down (``--gateway-url`` with nothing listening) never keeps the
server from starting: ``/api/status`` answers once the server is up, and asking for kernels
gives the gateway's error, which the frontend extension shows in JupyterLab."""

from __future__ import annotations

import time

import httpx
import pytest
from servers import ServerProcess, launch, server_command

pytestmark = pytest.mark.timeout(180)

#: the discard port: nothing listens on it
DOWN = "http://127.0.0.1:9"


# jupyter_server logs each request the gateway could not serve
@pytest.mark.expect_errors(r"503 GET /api/(status|kernelspecs)")
def test_a_gateway_that_is_down_does_not_delay_the_start(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root, tmp_path / "state", config={"GatewayClient": {"url": DOWN}})
    server.write_config()
    command = server_command(server.python, server.app, server.port, server.token, root)
    server.process = launch(command, server.env(), server.log_path)
    try:
        status = None
        deadline = time.monotonic() + 90  # detects a hang (the issue saw none within 60 s)
        while status is None and time.monotonic() < deadline:
            assert server.process.poll() is None, server.log()[-3000:]
            try:
                status = httpx.get(f"{server.url}/api/status", params={"token": server.token})
            except httpx.TransportError:
                time.sleep(0.1)  # not listening yet: another process, nothing to await
        assert status is not None, server.log()[-3000:]
        specs = httpx.get(
            f"{server.url}/api/kernelspecs", params={"token": server.token}, timeout=30
        )
        assert specs.status_code >= 500
        # (jupyter_server's message, which leaves its "%s" for the URL unfilled)
        assert "Gateway" in specs.json()["message"], specs.text
    finally:
        server.stop()
