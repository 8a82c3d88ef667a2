"""A server forked from the tests' fork server (``tests/fork_server.py``) sees its environment
as a server started by ``python -m jupyterlab`` does.

Two JupyterLab servers, one forked and one started the plain way, each with Jupyter and
IPython folders of its own, and no setting that names a folder but the ones every test server
has: each lists the kernelspec in its own data folder, and after the same requests (a
workspace saved, a setting saved, a kernel started and stopped) each has written the same
files, in its own folders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fork_server
import httpx
import pytest
from servers import ServerProcess, launch, server_command, wait_until_answering

pytestmark = pytest.mark.slow

#: a kernelspec in the server's own data folder (a copy of python3's, under another name)
KERNELSPEC = "own-python"
#: kernels' connection files are named by their ids
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def start(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, *, fork: bool) -> Any:
    root = tmp_path / name / "root"
    root.mkdir(parents=True)
    server = ServerProcess(root, tmp_path / name / "state", app="jupyterlab")
    server.write_config()
    # the file-id database in its default place: the data folder
    config_file = server.state / "config" / "jupyter_server_config.json"
    config = json.loads(config_file.read_text())
    del config["BaseFileIdManager"]
    config_file.write_text(json.dumps(config))
    kernelspec = server.state / "data" / "kernels" / KERNELSPEC
    kernelspec.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]}
    (kernelspec / "kernel.json").write_text(
        json.dumps({**spec, "display_name": name, "language": "python"})
    )
    monkeypatch.setenv("JCS_TEST_FORK_SERVER", "1" if fork else "0")
    # no folder on the command line: the settings and workspaces folders are LabApp's defaults
    command = server_command(str(server.python), server.app, server.port, server.token, root)
    server.process = launch(command, server.env(), server.log_path)
    assert isinstance(server.process, fork_server.ForkedProcess) == fork
    wait_until_answering(
        server.process,
        f"{server.url}/api/status",
        server.log_path,
        name=name,
        timeout=120,
        params={"token": server.token},
    )
    return server


def exercise(server: ServerProcess) -> dict[str, list[str]]:
    """Make the same requests of ``server``: what it answered, and which files it wrote under
    its state folder (its process id as ``<pid>``, kernel ids as ``<uuid>``)."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"token {server.token}"}, timeout=60
    ) as http:
        specs = http.get("/api/kernelspecs").json()
        workspace = {"data": {}, "metadata": {"id": "checked"}}
        http.put("/lab/api/workspaces/checked", json=workspace).raise_for_status()
        setting = {"raw": '{"theme": "JupyterLab Dark"}'}
        http.put(
            "/lab/api/settings/@jupyterlab/apputils-extension:themes", json=setting
        ).raise_for_status()
        kernel = http.post("/api/kernels", json={"name": KERNELSPEC}).json()
        # the kernel's IPython folder is the server's: its profile appears there
        profile = server.state / "ipython" / "profile_default"
        deadline = time.monotonic() + 90
        while not profile.exists():
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.05)  # another process writes it: nothing to await
        http.delete(f"/api/kernels/{kernel['id']}").raise_for_status()
    assert server.process is not None
    pid = str(server.process.pid)
    files = sorted(
        {
            UUID.sub("<uuid>", re.sub(rf"\b{pid}\b", "<pid>", str(path.relative_to(server.state))))
            for path in server.state.rglob("*")
            if path.is_file() and "ipython" not in path.parts and path.suffix != ".log"
        }
    )
    return {"kernelspecs": sorted(specs["kernelspecs"]), "files": files}


def assert_forked_start_fails(folder: Path) -> None:
    """A server that cannot start exits with its status, which the fork server reports."""
    root = folder / "root"
    root.mkdir(parents=True)
    server = ServerProcess(root, folder / "state")
    server.write_config()
    command = [*server_command(str(server.python), server.app, 0, server.token, root), "--port=x"]
    process = launch(command, server.env(), server.log_path, watch_errors=False)
    assert isinstance(process, fork_server.ForkedProcess)
    assert process.wait(120) == 1, server.log()[-3000:]
    assert process.poll() == 1
    assert "'x'" in server.log()


def test_a_forked_server_sees_its_environment_as_a_plain_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fork_server.enabled():
        pytest.skip("JCS_TEST_FORK_SERVER=0: servers start the plain way")
    # the fork server may be started by this test's first request: that request must not
    # be the compared server's, whose environment the fork server would then have
    assert_forked_start_fails(tmp_path / "first")
    seen: dict[str, dict[str, list[str]]] = {}
    for name, fork in (("forked", True), ("plain", False)):
        server = start(tmp_path, name, monkeypatch, fork=fork)
        try:
            seen[name] = exercise(server)
            with pytest.raises(subprocess.TimeoutExpired):
                server.process.wait(0.1)
        finally:
            server.stop()
        assert server.process.returncode == 0, server.log()[-3000:]
    assert KERNELSPEC in seen["plain"]["kernelspecs"]
    assert seen["forked"]["kernelspecs"] == seen["plain"]["kernelspecs"]
    forked, plain = set(seen["forked"]["files"]), set(seen["plain"]["files"])
    assert (forked - plain, plain - forked) == (set(), set())
    # the folders that come from the environment at the import of jupyterlab and fileid
    assert any(f.startswith("config/lab/workspaces/checked") for f in plain)
    assert (
        "config/lab/user-settings/@jupyterlab/apputils-extension/themes.jupyterlab-settings"
        in plain
    )
    assert "data/file_id_manager.db" in plain


def configured_server(tmp_path: Path) -> tuple[Path, ServerProcess]:
    """A server's root and configured ``ServerProcess`` (not started), for a test of how the
    fork server starts it (skipped when servers start the plain way)."""
    if not fork_server.enabled():
        pytest.skip("JCS_TEST_FORK_SERVER=0: servers start the plain way")
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root, tmp_path / "state")
    server.write_config()
    return root, server


def test_a_dead_fork_server_leaves_servers_to_start_the_plain_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root, server = configured_server(tmp_path)
    dead = fork_server.ForkServer(server.env(), str(root))
    dead.process.kill()
    dead.process.wait()
    # (this worker's own fork server, and whether it gave up on it, are restored afterwards)
    monkeypatch.setattr(fork_server, "_fork_server", dead)
    monkeypatch.setattr(fork_server, "_disabled", None)
    command = [*server_command(str(server.python), server.app, 0, server.token, root), "--port=x"]
    process = launch(command, server.env(), server.log_path, watch_errors=False)
    assert "plain way: the fork server exited" in caplog.text
    assert isinstance(process, subprocess.Popen)
    assert process.wait(120) == 1
    assert fork_server.spawn(command, server.env(), server.log_path, None) is None
    dead.stop()


def test_a_start_that_puts_folders_first_on_its_path_runs_their_sitecustomize(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, server = configured_server(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    # the folder searched first (after the working folder, which ``-m`` puts first after
    # ``site`` ran), and whether the server's modules were imported before it ran
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "first = [p for p in sys.path if p not in ('', os.getcwd())][0]\n"
        "print('sitecustomize:', os.getpid(), first == os.path.dirname(__file__),"
        " 'jupyter_server.serverapp' in sys.modules, flush=True)\n"
    )
    env = server.env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    command = [*server_command(str(server.python), server.app, 0, server.token, root), "--port=x"]
    process = launch(command, env, server.log_path, watch_errors=False)
    assert isinstance(process, fork_server.ForkedProcess)
    assert process.wait(120) == 1, server.log()[-3000:]
    # (preloaded: the server's own modules are imported before any sitecustomize runs)
    assert f"sitecustomize: {process.pid} True True" in server.log()
    assert "'x'" in server.log()

    # a folder with a module of a preloaded one's name would have replaced it: a plain start
    (site / "jupyter_server").mkdir()
    (site / "jupyter_server" / "__init__.py").write_text("raise SystemExit('the folder own')\n")
    plain_log = tmp_path / "plain.log"
    process = launch(command, env, plain_log, watch_errors=False)
    assert f"{site} has a module jupyter_server other than the preloaded one" in caplog.text
    assert isinstance(process, subprocess.Popen)
    assert process.wait(120) == 1
    log = plain_log.read_text()
    assert f"sitecustomize: {process.pid} True False" in log and "the folder own" in log
