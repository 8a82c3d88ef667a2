"""Every route and room of the extension, as listed by ``handlers.routes()`` (so a new route is
swept without editing this file): without a token, with a wrong token, and — logged in by cookie —
without the XSRF token or from a foreign origin. Each is refused before it does anything.
"""

from __future__ import annotations

import re
from collections import Counter

import httpx
import pytest
from helpers import write_notebook
from httpx_ws import aconnect_ws
from tornado import web
from tornado.websocket import WebSocketHandler

from jupyter_cocalc_sync.handlers import routes

NB = "nb.ipynb"
#: sample values for the routes' named groups
SAMPLES = {
    "path": NB,
    "sha1": "0" * 40,
    "cell_id": "cell-0",
    "version": "1",
    "kernel_id": "00000000-0000-0000-0000-000000000000",
    "request_id": "00000000-0000-0000-0000-000000000001",
}
METHODS = ("get", "post", "put", "patch", "delete")


def concrete(pattern: str, file_id: str) -> str:
    """A URL that the route's pattern matches, for the notebook ``nb.ipynb``."""
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLES[m.group(1)], pattern)
    if "/room/" in url:
        room = f"syncdb:{file_id}" if "cocalc-sync" in url else f"json:notebook:{file_id}"
        return url.replace("(.+)", room)
    return url.replace("(.+)", NB)


def swept_routes(file_id: str) -> list[tuple[str, str]]:
    """``(method, url)`` of every route; websocket routes as ``("WS", url)``."""
    swept = []
    for rule in routes():
        pattern, handler = rule[0], rule[1]
        url = concrete(pattern, file_id)
        if issubclass(handler, WebSocketHandler):
            swept.append(("WS", url))
            continue
        for method in METHODS:
            if getattr(handler, method) is not getattr(web.RequestHandler, method):
                swept.append((method.upper(), url))
    return swept


async def state_of(server) -> tuple:
    """What a refused request must not have changed: the document and the running kernels."""
    notebook = (await server.http.get(f"/api/cocalc-sync/notebooks/{NB}")).json()
    kernels = (await server.http.get("/api/kernels")).json()
    return notebook["version"], notebook["records"], sorted(k["id"] for k in kernels)


async def refused(client: httpx.AsyncClient, server, method: str, url: str, **kw) -> int:
    """The status a request or websocket handshake got; asserts a JSON body for HTTP."""
    if method == "WS":
        try:
            async with aconnect_ws(server.ws_url(url), client, **kw):
                return 101
        except Exception as handshake:  # httpx_ws raises on a non-101 answer
            match = re.search(r"\b(4\d\d)\b", str(handshake))
            return int(match.group(1)) if match else 0
    response = await client.request(method, url, json={}, **kw)
    if response.status_code in (401, 403):
        assert response.headers["content-type"].startswith("application/json"), (method, url)
    return response.status_code


async def test_every_route_refuses_missing_and_wrong_credentials(server, root_dir):
    write_notebook(root_dir / NB, ["x = 1"])
    before = await state_of(server)
    file_id = (await server.http.get(f"/api/cocalc-sync/notebooks/{NB}")).json()["file_id"]
    swept = swept_routes(file_id)
    assert len(swept) >= len(routes())
    outcomes: Counter[str] = Counter()
    async with (
        httpx.AsyncClient(base_url=server.base_url) as anonymous,
        httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": "token not-the-token"}
        ) as wrong,
    ):
        for method, url in swept:
            for name, client in (("no token", anonymous), ("wrong token", wrong)):
                status = await refused(client, server, method, url)
                assert status in (401, 403), (name, method, url, status)
                outcomes[f"{name} {status}"] += 1
    print(f"routes swept: {len(swept)}, outcomes: {dict(outcomes)}")
    assert await state_of(server) == before


async def logged_in(server) -> httpx.AsyncClient:
    """A browser-like client: logged in by cookie, holding the ``_xsrf`` cookie."""
    client = httpx.AsyncClient(base_url=server.base_url)
    await client.get("/login")
    xsrf = client.cookies.get("_xsrf")
    assert xsrf, "the login page sets the _xsrf cookie"
    response = await client.post("/login", data={"password": server.token, "_xsrf": xsrf})
    assert response.status_code in (302, 303), response.text
    return client


@pytest.fixture
def cookie_client(server, jp_asyncio_loop):
    client = jp_asyncio_loop.run_until_complete(logged_in(server))
    yield client
    jp_asyncio_loop.run_until_complete(client.aclose())


async def test_cookie_requests_need_the_xsrf_token_and_rooms_need_the_same_origin(
    server, root_dir, cookie_client
):
    write_notebook(root_dir / NB, ["x = 1"])
    before = await state_of(server)
    file_id = (await server.http.get(f"/api/cocalc-sync/notebooks/{NB}")).json()["file_id"]
    xsrf = {"X-XSRFToken": cookie_client.cookies["_xsrf"]}
    same_origin = {"Origin": server.base_url.split("/")[0] + "//" + url_host(server)}
    outcomes: Counter[str] = Counter()
    swept = swept_routes(file_id)
    for method, url in swept:
        if method == "WS":
            # a page on another site opening the room with the user's cookie
            foreign = {"Origin": "https://evil.example"}
            assert await refused(cookie_client, server, method, url, headers=foreign) == 403
            outcomes["foreign origin 403"] += 1
        elif method != "GET":  # reads change nothing and are not XSRF-protected
            status = await refused(cookie_client, server, method, url)
            assert status == 403, (method, url, status)
            outcomes["no xsrf 403"] += 1
    print(f"cookie sweep outcomes: {dict(outcomes)}")
    assert outcomes["no xsrf 403"] >= 5 and outcomes["foreign origin 403"] == 2
    assert await state_of(server) == before
    # the controls: the same cookie is a valid login, with the token / from the same origin
    for method, url in swept:
        if method == "WS":
            assert await refused(cookie_client, server, method, url, headers=same_origin) == 101
        elif method != "GET":
            status = await refused(cookie_client, server, method, url, headers=xsrf)
            assert status != 403, (method, url, status)


def url_host(server) -> str:
    return server.base_url.split("/")[2]
