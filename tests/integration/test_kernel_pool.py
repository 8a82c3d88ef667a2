"""The kernel pool: pre-started kernels handed out to every kernel start, invisibly."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import kernels_of_this_test, start_session
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jupyter_cocalc_sync.pool.manager import PoolingKernelManager
from jupyter_cocalc_sync.pool.priority import BOOT_NICE

DEADLINE_S = 60


@pytest.fixture
def pool_config() -> dict[str, Any]:
    """``c.KernelPool`` for the test's server (tests may mutate this dict)."""
    return {"size": 1, "max_size": 1, "launch_delay_ms": 0}


@pytest.fixture
def kernel_manager_class() -> str:
    return "jupyter_cocalc_sync.pool.manager.PoolingKernelManager"


@pytest.fixture
def jp_server_config(jp_server_config, pool_config, kernel_manager_class):
    jp_server_config["KernelPool"] = Config(pool_config)
    jp_server_config["ServerApp"]["kernel_manager_class"] = kernel_manager_class
    return jp_server_config


@pytest.fixture
def manager(jp_serverapp, jp_asyncio_loop) -> PoolingKernelManager:
    """The server's kernel manager, its pool started and full."""
    km = jp_serverapp.kernel_manager
    assert isinstance(km, PoolingKernelManager)

    async def fill() -> None:
        km.start_pool()
        if km.pool.size:
            await km.pool.wait_ready(timeout=DEADLINE_S)

    jp_asyncio_loop.run_until_complete(fill())
    return km


async def execute(km, kernel_id: str, code: str, **expressions: str) -> dict[str, Any]:
    """Run ``code`` on a kernel as a frontend would; the execute_reply's content.

    As jupyter_server's kernel websocket does, the kernel's ``ready`` is awaited first: a
    claimed kernel's is its re-pointing at the notebook (code sent before this request could
    otherwise run after it, in the pool's folder)."""
    kernel = km.get_kernel(kernel_id)
    ready = kernel.ready
    await (asyncio.wrap_future(ready) if isinstance(ready, concurrent.futures.Future) else ready)
    client = kernel.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=DEADLINE_S)
        reply = await client.execute_interactive(
            code, user_expressions=expressions, timeout=DEADLINE_S
        )
    finally:
        client.stop_channels()
    content = reply["content"]
    assert content["status"] == "ok", content
    return content


def value(content: dict[str, Any], name: str) -> Any:
    """A user expression's value (they come back as reprs)."""
    import ast

    expression = content["user_expressions"][name]
    assert expression["status"] == "ok", expression
    return ast.literal_eval(expression["data"]["text/plain"])


async def until(condition, what: str) -> None:
    """Poll ``condition`` until true (for what no event can be awaited: process exits)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def exit_collectable(pid: int) -> bool:
    """Whether our child ``pid`` has exited and can be waited for (left to be reaped)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def kernel_pid(km, kernel_id: str) -> int:
    return km.get_kernel(kernel_id).provisioner.pid


async def test_session_gets_a_pooled_kernel_repointed_at_the_notebook(
    jp_fetch, jp_root_dir, manager
):
    nb_dir = jp_root_dir / "sub" / "dir"
    nb_dir.mkdir(parents=True)
    (nb_dir / "helper_mod.py").write_text("WHERE = 'sub/dir'\n")
    pooled = set(manager.pool.kernel_ids())
    assert len(pooled) == 1

    session = await start_session(jp_fetch, "sub/dir/nb.ipynb")

    kernel_id = session["kernel"]["id"]
    assert kernel_id in pooled
    assert manager.pool_status()["counters"]["claimed"] == 1
    content = await execute(
        manager,
        kernel_id,
        "import helper_mod",
        cwd="__import__('os').getcwd()",
        session="__session__",
        env="__import__('os').environ['JPY_SESSION_NAME']",
        where="helper_mod.WHERE",
    )
    assert content["execution_count"] == 1
    assert value(content, "cwd") == str(nb_dir)
    assert value(content, "session") == str(nb_dir / "nb.ipynb")
    assert value(content, "env") == str(nb_dir / "nb.ipynb")
    assert value(content, "where") == "sub/dir"
    km = manager.get_kernel(kernel_id)
    assert km.resolve_path("helper_mod.py") == str(nb_dir / "helper_mod.py")
    # the pool refills behind the claim
    await manager.pool.wait_ready(timeout=DEADLINE_S)
    assert kernel_id not in manager.pool.kernel_ids()


#: (no refill behind the claim: a kernel booting that the test does not look at)
@pytest.mark.parametrize("pool_config", [{"size": 1, "max_size": 1, "launch_delay_ms": 600_000}])
async def test_restart_keeps_the_notebook_folder(jp_fetch, jp_root_dir, manager):
    (jp_root_dir / "work").mkdir()
    session = await start_session(jp_fetch, "work/analysis.ipynb")
    kernel_id = session["kernel"]["id"]
    old_pid = kernel_pid(manager, kernel_id)

    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}")

    assert kernel_pid(manager, kernel_id) != old_pid
    content = await execute(
        manager, kernel_id, "pass", cwd="__import__('os').getcwd()", session="__session__"
    )
    assert value(content, "cwd") == str(jp_root_dir / "work")
    assert value(content, "session") == str(jp_root_dir / "work" / "analysis.ipynb")
    assert content["execution_count"] == 1


async def test_api_kernels_lists_only_claimed_kernels(jp_fetch, manager):
    pooled = manager.pool.kernel_ids()
    r = await jp_fetch("api", "kernels")
    assert json.loads(r.body) == []
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("api", "kernels", pooled[0])
    assert e.value.code == 404
    r = await jp_fetch("api", "status")
    assert json.loads(r.body)["kernels"] == 0

    r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    claimed = json.loads(r.body)["id"]
    assert claimed == pooled[0]
    await manager.pool.wait_ready(timeout=DEADLINE_S)
    r = await jp_fetch("api", "kernels")
    assert [k["id"] for k in json.loads(r.body)] == [claimed]
    assert manager.list_kernel_ids() == [claimed]


async def test_pooled_kernels_are_not_culled(manager):
    manager.cull_idle_timeout = 1
    (kernel_id,) = manager.pool.kernel_ids()
    await manager.cull_kernels()
    assert manager.pool.kernel_ids() == [kernel_id]


async def test_explicit_kernel_id_bypasses_the_pool(jp_fetch, manager):
    pooled = manager.pool.kernel_ids()
    wanted = "0c0ffee0-0000-4000-8000-000000000001"
    kernel_id = await manager.start_kernel(kernel_id=wanted, kernel_name="python3")
    assert kernel_id == wanted
    assert manager.pool.kernel_ids() == pooled
    # ... while kernel_id=None passed explicitly (jupyter_server PR #1655) does not
    assert await manager.start_kernel(kernel_id=None, kernel_name="python3") == pooled[0]


async def test_a_pooled_kernel_that_died_is_never_handed_out(jp_fetch, jp_root_dir, manager):
    (dead_id,) = manager.pool.kernel_ids()
    (dead_pid,) = manager.pool.kernel_pids()
    os.kill(dead_pid, signal.SIGKILL)
    # until its exit can be collected (the claim's liveness check): its main thread shows as a
    # zombie while its other threads are still being torn down. (A kernel that dies after
    # that check is restarted before its first request: test_kernel_faults.)
    await until(lambda: exit_collectable(dead_pid), "the pooled kernel to die")

    session = await start_session(jp_fetch, "nb.ipynb")

    kernel_id = session["kernel"]["id"]
    assert kernel_id != dead_id
    content = await execute(manager, kernel_id, "pass", cwd="__import__('os').getcwd()")
    assert value(content, "cwd") == str(jp_root_dir)
    assert content["execution_count"] == 1
    # and the pool replaced it
    await manager.pool.wait_ready(timeout=DEADLINE_S)
    assert dead_id not in manager.pool.kernel_ids()
    assert manager.pool_status()["counters"]["replaced"] == 1


async def test_a_dead_pooled_kernel_is_replaced_while_waiting(manager):
    (dead_id,) = manager.pool.kernel_ids()
    (dead_pid,) = manager.pool.kernel_pids()
    os.kill(dead_pid, signal.SIGKILL)
    await until(lambda: manager.pool.kernel_ids() not in ([], [dead_id]), "a replacement")
    assert gone(dead_pid)
    assert manager.pool_status()["counters"]["replaced"] == 1


@pytest.mark.parametrize("pool_config", [{"size": 2, "max_size": 2, "launch_delay_ms": 0}])
async def test_shutdown_all_leaves_no_kernel_process(jp_fetch, manager):
    session = await start_session(jp_fetch, "nb.ipynb")
    claimed_pid = kernel_pid(manager, session["kernel"]["id"])
    # the refill is under way: its kernel must not be orphaned either
    await until(lambda: len(manager.pool.kernel_pids()) == 2, "the refill to start")
    pids = [claimed_pid, *manager.pool.kernel_pids()]
    assert len(set(pids)) == 3
    # (a pid is known once forked: the process is a kernel once it has exec'd ipykernel)
    await until(
        lambda: {p.pid for p in kernels_of_this_test()} == set(pids), "three kernel processes"
    )

    await manager.shutdown_all()

    await until(lambda: all(gone(pid) for pid in pids), "every kernel process to exit")
    assert kernels_of_this_test() == []
    assert manager.pool_status()["kernels"] == {}


def install_kernelspec(kernel_dir: Path, name: str, language: str) -> None:
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": language,
    }
    (kernel_dir / name).mkdir(parents=True)
    (kernel_dir / name / "kernel.json").write_text(json.dumps(spec))


@pytest.mark.parametrize("pool_config", [{"size": 1, "launch_delay_ms": 0, "exclude": ["py-x"]}])
async def test_julia_excluded_and_other_languages_are_not_pooled(jp_fetch, jp_kernel_dir, manager):
    install_kernelspec(Path(jp_kernel_dir), "julia-1.10", "python")
    install_kernelspec(Path(jp_kernel_dir), "py-x", "python")
    install_kernelspec(Path(jp_kernel_dir), "not-python", "R")
    for i, name in enumerate(["julia-1.10", "py-x", "not-python", "echo"]):
        session = await start_session(jp_fetch, f"nb{i}.ipynb", kernel=name)
        assert session["kernel"]["name"] == name
        assert session["kernel"]["id"] not in manager.pool.kernel_ids()
    status = manager.pool_status()
    assert set(status["not_pooled"]) == {"julia-1.10", "py-x", "not-python", "echo"}
    assert "R" in status["not_pooled"]["not-python"]
    assert set(status["kernels"]) == {"python3"}
    assert status["counters"]["claimed"] == 0


async def test_kernels_endpoint_returns_kernelspecs_and_pool_status(jp_fetch, manager):
    r = await jp_fetch("api", "cocalc-sync", "kernels")
    data = json.loads(r.body)
    stock = json.loads((await jp_fetch("api", "kernelspecs")).body)
    assert data["kernelspecs"] == stock["kernelspecs"]
    assert data["default"] == stock["default"] == "python3"
    pool = data["pool"]
    assert pool["size"] == 1 and pool["launch_delay_ms"] == 0
    assert pool["kernels"]["python3"] == {
        "kernel_name": "python3",
        "ready": 1,
        "starting": 0,
        "target": 1,
    }


async def test_kernels_endpoint_refuses_requests_without_a_token(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("api", "cocalc-sync", "kernels", headers={"Authorization": ""})
    assert e.value.code in (401, 403)


@pytest.mark.parametrize(
    "kernel_manager_class",
    ["jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"],
)
async def test_kernels_endpoint_without_the_pooling_manager(jp_fetch):
    data = json.loads((await jp_fetch("api", "cocalc-sync", "kernels")).body)
    assert data["pool"] is None
    assert "python3" in data["kernelspecs"]


@pytest.mark.parametrize("pool_config", [{"size": 0}])
async def test_size_zero_disables_the_pool(jp_fetch, jp_serverapp):
    km = jp_serverapp.kernel_manager
    km.start_pool()
    session = await start_session(jp_fetch, "nb.ipynb")
    assert session["kernel"]["id"] in km.list_kernel_ids()
    status = km.pool_status()
    assert status["enabled"] is False and status["kernels"] == {}


@pytest.mark.parametrize("pool_config", [{"size": 1, "launch_delay_ms": 0, "timeout_s": 0.5}])
async def test_idle_pooled_kernels_are_recycled(manager):
    (first,) = manager.pool.kernel_ids()
    await until(lambda: manager.pool.kernel_ids() not in ([], [first]), "a fresh kernel")
    assert manager.pool_status()["counters"]["recycled"] >= 1


def boot_nice(pid: int) -> int:
    """The CPU priority a pool gives a kernel process: its autogroup's nice value where the
    scheduler's autogroups are on, else its main thread's."""
    if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    return os.getpriority(os.PRIO_PROCESS, pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling")
@pytest.mark.parametrize(
    "pool_config", [{"size": 1, "max_size": 3, "launch_delay_ms": 0, "demand_window_s": 600}]
)
async def test_the_pool_grows_with_demand_and_shrinks_when_idle(jp_fetch, manager):
    # three notebooks opened together: one pooled kernel serves one, then the pool holds three
    sessions = await asyncio.gather(*(start_session(jp_fetch, f"nb{i}.ipynb") for i in range(3)))
    assert manager.pool_status()["kernels"]["python3"]["target"] == 3
    await manager.pool.wait_ready(timeout=DEADLINE_S)
    assert len(manager.pool.kernel_ids()) == 3
    assert not set(manager.pool.kernel_ids()) & {s["kernel"]["id"] for s in sessions}

    # the operator's memory budget: room for two of them
    status = manager.pool_status()
    manager.pool.max_memory_mb = status["memory_mb"] * 2.5 / 3
    await until(lambda: len(manager.pool.kernel_ids()) == 2, "the pool to fit its budget")
    # nobody opened a notebook within the demand window: back to its size
    manager.pool.demand_window_s = 0.5
    await until(lambda: len(manager.pool.kernel_ids()) == 1, "the pool to shrink")
    status = manager.pool_status()
    assert status["kernels"]["python3"]["target"] == 1
    assert status["counters"]["shrunk"] == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling")
async def test_a_booting_refill_yields_the_cpu_to_a_kernel_start(jp_fetch, manager):
    session = await start_session(jp_fetch, "nb.ipynb")
    await until(manager.pool.booting_pids, "the refill to boot")
    # (no await from here to the start: the refill is still booting)
    (pid,) = manager.pool.booting_pids()
    assert boot_nice(pid) == 0
    with manager.pool.start_under_way():
        assert boot_nice(pid) == BOOT_NICE
    await until(lambda: boot_nice(pid) == 0, "its normal priority back after the start")
    assert boot_nice(kernel_pid(manager, session["kernel"]["id"])) == 0
