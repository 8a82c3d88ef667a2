"""A real JupyterHub for tests: configurable-http-proxy, the dummy authenticator, and
single-user servers (``jupyterhub-singleuser`` with this extension) spawned as local processes.

Users log in the way a browser does: the hub's login form, then JupyterHub's OAuth dance into
the single-user server, which leaves them with cookies (and the XSRF token their requests
repeat). A service token with admin rights lets the test read the hub's view of servers.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from servers import free_port, isolated_env, launch, stop_process, wait_until_answering

REPO = Path(__file__).resolve().parents[2]
#: where tests/run.sh installs configurable-http-proxy from npm
LOCAL_CHP = REPO / ".ci" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"


def chp_command() -> str | None:
    if LOCAL_CHP.exists():
        return str(LOCAL_CHP)
    return shutil.which("configurable-http-proxy")


def hub_missing_reason() -> str | None:
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed (pip install -e '.[test]')"
    if chp_command() is None:
        return "configurable-http-proxy is missing (tests/run.sh installs it with npm)"
    return None


#: the single-user servers' Jupyter config: what an operator writes (docs/deployment.md, JupyterHub)
SINGLE_USER_CONFIG = """\
import os

c.ServerApp.allow_root = True  # the test machine runs everything as root
c.ServerApp.jpserver_extensions = {{
    "jupyter_cocalc_sync": True,
    "jupyter_server_fileid": True,
    "jupyter_server_ydoc": False,
}}
# the home directory may be on network storage: SQLite files go to local disk
local = os.path.join({local!r}, os.environ["JUPYTERHUB_USER"])
c.CocalcSync.store_path = os.path.join(local, "cocalc.db")
c.BaseFileIdManager.db_path = os.path.join(local, "file_id.db")
c.NotebookNotary.db_file = os.path.join(local, "nbsignatures.db")
c.CocalcSync.activity_interval = {activity_interval!r}
c.KernelPool.size = 0
"""

HUB_CONFIG = """\
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.auth_token = {proxy_token!r}
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.pid_file = "{state}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
# the hub's own sampling of proxy traffic (every 5 minutes by default) is kept out of the
# tests: the activity they watch is what the single-user servers report
c.JupyterHub.last_activity_interval = 3600

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

# a local process running as the hub's own user, home directories under the test's folder
import socket
from jupyterhub.spawner import SimpleLocalProcessSpawner


# Each start's port stays bound here (with SO_REUSEADDR, not listening) until the server stops:
# JupyterHub's own choice closes its socket at once, and in the seconds before the server binds
# the port, another test worker's server or any outgoing connection may be handed it. Linux
# hands a bound port to nobody else; the server (tornado sets SO_REUSEADDR too) binds it.
class HeldPortSpawner(SimpleLocalProcessSpawner):
    _holder = None

    async def start(self):
        self._release()
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((self.ip or "127.0.0.1", 0))
        self._holder, self.port = holder, holder.getsockname()[1]
        return await super().start()

    async def stop(self, now=False):
        try:
            return await super().stop(now=now)
        finally:
            self._release()

    def _release(self):
        if self._holder is not None:
            self._holder.close()
            self._holder = None


c.JupyterHub.spawner_class = HeldPortSpawner
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {environment!r}

# users may share their servers (JupyterHub 5+) with users they name
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "shares!user", "read:users:name"]}},
    {{"name": "tester", "scopes": ["admin:users", "admin:servers"], "services": ["tester"]}},
]
c.JupyterHub.services = [{{"name": "tester", "api_token": {service_token!r}}}]
"""


class Hub:
    """Starts and stops a JupyterHub whose state, homes and logs are under ``state``."""

    def __init__(
        self, state: Path, *, activity_interval: float = 1.0, extra_config: str = ""
    ) -> None:
        self.state = state
        #: lines appended to jupyterhub_config.py (e.g. a pre_spawn_hook)
        self.extra_config = extra_config
        self.homes = state / "homes"
        self.local = state / "local"
        self.port = free_port()
        self.service_token = secrets.token_hex(16)
        self.activity_interval = activity_interval
        self.log_path = state / "hub.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Hub:
        config_dir = self.state / "single-user-config"
        config_dir.mkdir(parents=True, exist_ok=True)
        single_user_config = SINGLE_USER_CONFIG.format(
            local=str(self.local), activity_interval=self.activity_interval
        )
        (config_dir / "jupyter_server_config.py").write_text(single_user_config)
        self.homes.mkdir(parents=True, exist_ok=True)
        environment = {
            # the single-user servers import this checkout and read the config above
            "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)),
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_PLATFORM_DIRS": "1",
            # report activity to the hub every second (JupyterHub's default: 5 minutes)
            "JUPYTERHUB_ACTIVITY_INTERVAL": "1",
        }
        config = HUB_CONFIG.format(
            port=self.port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=chp_command(),
            proxy_token=secrets.token_hex(16),
            state=self.state,
            homes=self.homes,
            python=sys.executable,
            environment=environment,
            service_token=self.service_token,
        )
        (self.state / "jupyterhub_config.py").write_text(config + self.extra_config)
        self.process = launch(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.state / "jupyterhub_config.py")],
            isolated_env(self.state / "hub-env"),
            self.log_path,
            cwd=self.state,
        )
        wait_until_answering(
            self.process, f"{self.url}/hub/api/", self.log_path, name="jupyterhub", timeout=timeout
        )
        return self

    def stop(self, timeout: float = 30) -> None:
        # SIGTERM: the hub stops the single-user servers it spawned and its proxy
        stop_process(self.process, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self) -> httpx.AsyncClient:
        """The hub's REST API as the test's admin service."""
        return httpx.AsyncClient(
            base_url=f"{self.url}/hub/api",
            headers={"Authorization": f"token {self.service_token}"},
            timeout=60,
        )


class HubUser:
    """A user with a browser's cookies: logged in through the hub's login form."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.http = httpx.AsyncClient(base_url=hub.url, follow_redirects=True, timeout=60)

    def xsrf_headers(self, path_prefix: str) -> dict[str, str]:
        """The XSRF header for a cookie-authenticated request below ``path_prefix``."""
        for cookie in self.http.cookies.jar:
            if cookie.name == "_xsrf" and path_prefix.startswith(cookie.path.rstrip("/")):
                return {"X-XSRFToken": cookie.value}
        return {}

    async def login(self) -> HubUser:
        await self.http.get("/hub/login")
        response = await self.http.post(
            "/hub/login",
            data={"username": self.name, "password": "any", **self._xsrf_form("/hub/")},
        )
        response.raise_for_status()
        return self

    def _xsrf_form(self, prefix: str) -> dict[str, str]:
        header = self.xsrf_headers(prefix)
        return {"_xsrf": header["X-XSRFToken"]} if header else {}

    async def enter(self, owner: str) -> ServerSession:
        """Go through OAuth into ``owner``'s single-user server (it must be running)."""
        prefix = f"/user/{quote(owner)}/"
        # API routes answer 403 until the server knows the user: a page starts OAuth
        await self._confirm_oauth(await self.http.get(prefix))
        me = await self.http.get(prefix + "api/me")
        if me.status_code != 200:
            raise PermissionError(f"{self.name} cannot enter {prefix}: {me.status_code}")
        return ServerSession(self, prefix)

    async def _confirm_oauth(self, response: httpx.Response) -> httpx.Response:
        """JupyterHub asks before giving a user access to someone else's server."""
        if "/hub/api/oauth2/authorize" not in str(response.url):
            return response
        form = {"_xsrf": self._xsrf_form("/hub/").get("_xsrf", "")}
        return await self.http.post(str(response.url), data=form)

    async def aclose(self) -> None:
        await self.http.aclose()


class ServerSession:
    """A user's cookie session on one single-user server (URLs below its prefix)."""

    def __init__(self, user: HubUser, prefix: str) -> None:
        self.user = user
        self.prefix = prefix
        self.base_url = user.hub.url + prefix.rstrip("/")

    def client(self) -> httpx.AsyncClient:
        """A client of this server with the user's cookies and XSRF header (for the
        extension's Python client and the test helpers)."""
        return httpx.AsyncClient(
            base_url=self.base_url,
            cookies=self.user.http.cookies,
            headers=self.user.xsrf_headers(self.prefix),
            timeout=60,
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.user.xsrf_headers(self.prefix), **kwargs.pop("headers", {})}
        return await self.user.http.request(
            method, self.prefix + path.lstrip("/"), headers=headers, **kwargs
        )
