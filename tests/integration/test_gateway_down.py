"""A kernel gateway that is down (``--gateway-url`` with nothing listening) never keeps the
server from starting: ``/api/status`` answers once the server is up, and asking for kernels
gives the gateway's error, which the frontend extension shows in JupyterLab."""

from __future__ import annotations

import httpx
import pytest
from servers import ServerProcess

pytestmark = pytest.mark.timeout(180)

#: the discard port: nothing listens on it
DOWN = "http://127.0.0.1:9"


# jupyter_server logs each request the gateway could not serve
@pytest.mark.expect_errors(r"503 GET /api/(status|kernelspecs)")
def test_a_gateway_that_is_down_does_not_delay_the_start(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root, tmp_path / "state", config={"GatewayClient": {"url": DOWN}})
    try:
        # a hang is what the issue feared (it saw none within 60 s); ``/api`` asks no gateway
        server.start(timeout=90, ready_path="/api")
        status = httpx.get(f"{server.url}/api/status", params={"token": server.token}, timeout=30)
        assert status.status_code in (200, 503), status.text
        specs = httpx.get(
            f"{server.url}/api/kernelspecs", params={"token": server.token}, timeout=30
        )
        assert specs.status_code >= 500
        # (jupyter_server's message, which leaves its "%s" for the URL unfilled)
        assert "Gateway" in specs.json()["message"], specs.text
    finally:
        server.stop()
