"""Shared fixtures: an isolated Jupyter environment and a server with this extension."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fork_server
import kernel_ports
import pytest
import server_errors
from postgres import PostgresCluster, unavailable_reason
from process_guard import ProcessGuard, Snapshot, snapshot
from servers import UNNEEDED_EXTENSIONS
from traitlets.config import Config

pytest_plugins = ["pytest_jupyter.jupyter_server", "cpu_durations"]

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


_process_guard = pytest.StashKey[ProcessGuard]()
_processes_before = pytest.StashKey[Snapshot]()
_processes_at_call = pytest.StashKey[Snapshot]()


def process_guard(config: pytest.Config) -> ProcessGuard:
    if _process_guard not in config.stash:
        base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
        config.stash[_process_guard] = ProcessGuard(base)
    return config.stash[_process_guard]


def pytest_configure(config: pytest.Config) -> None:
    kernel_ports.install()  # the in-process servers' kernels (kernel_ports.py says why)


@pytest.fixture(autouse=True)
def no_processes_left(request: pytest.FixtureRequest) -> None:
    """Note the processes running before the test (after the session's and module's
    fixtures started theirs); ``pytest_runtest_teardown`` looks for what the test left."""
    request.node.stash[_processes_before] = snapshot()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    item.stash[_processes_at_call] = snapshot()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Once every fixture of the test has ended (pytest-jupyter stops its in-process server in
    a fixture of its own, torn down after this package's): fail the test naming every error a
    server logged that it did not declare, and every process it started and left running."""
    result = yield
    problems = []
    if (errors := item.stash.get(_server_errors, None)) is not None:
        logging.getLogger().removeHandler(errors.capture)
        allowed = [p for m in item.iter_markers("expect_errors") for p in m.args]
        logged = errors.capture.entries + server_errors.log_file_errors(errors.offsets)
        if unexpected := server_errors.unexpected(logged, allowed):
            listed = "\n\n".join(e[:3000] for e in unexpected)
            problems.append(f"a server logged {len(unexpected)} unexpected error(s):\n\n{listed}")
    before = item.stash.get(_processes_before, None)
    if before is not None:
        guard = process_guard(item.config)
        at_call = item.stash.get(_processes_at_call, None)
        if left := guard.stop_lingering(guard.left_by_test(before, at_call)):
            problems.append("the test left processes running:\n" + "\n".join(left))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
    return result


@pytest.hookimpl(trylast=True)  # after the runner has torn down the session's fixtures
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run naming every process of it still running once every fixture has ended."""
    fork_server.stop()
    guard = process_guard(session.config)
    if left := guard.stop_lingering(guard.left_by_run()):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "processes of the test run left running", red=True)
            reporter.write_line("\n".join(left))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (``--dist loadgroup``)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of a module sharing a module-scoped fixture (a JupyterHub, a gateway and its
    server) run on one worker, in their order: spread over the workers, each would start one.

    The modules with a test marked ``slow`` come first: the workers take tests in this order
    (after the groups of more tests), and a test of minutes taken last would end the run alone
    while the other workers wait (the load test did, after every unit test had run)."""
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)  # (stable: modules stay whole)
    for item in items:
        fixture_info = getattr(item, "_fixtureinfo", None)
        if fixture_info is None or item.get_closest_marker("xdist_group"):
            continue
        scopes = {
            definitions[-1].scope
            for name in fixture_info.names_closure
            if (definitions := fixture_info.name2fixturedefs.get(name))
        }
        if "module" in scopes:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(autouse=True)
def isolated_jupyter_env(tmp_path_factory, monkeypatch):
    """Keep every test's Jupyter and IPython state out of the home directory."""
    base = tmp_path_factory.mktemp("jupyter-env")
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        path = base / sub
        path.mkdir()
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    yield


@dataclass
class _ServerErrors:
    capture: server_errors.LogCapture
    offsets: dict[Path, int]


_server_errors = pytest.StashKey[_ServerErrors]()


@pytest.fixture(autouse=True)
def no_server_errors(request: pytest.FixtureRequest) -> None:
    """Start collecting what servers (in-process or subprocesses) log at ERROR or above;
    ``pytest_runtest_teardown`` fails the test on anything it did not declare with
    ``@pytest.mark.expect_errors(regex, …)``, once the test's servers have stopped (their
    shutdown counts too)."""
    capture = server_errors.LogCapture()
    logging.getLogger().addHandler(capture)
    request.node.stash[_server_errors] = _ServerErrors(capture, server_errors.log_offsets())


@pytest.fixture
def cocalc_config(request) -> dict:
    """``c.CocalcSync`` for the test's server: fast defaults, plus ``@pytest.mark.cocalc(...)``."""
    config = {"autosave_delay": 0.2, "file_poll_interval": 0.2, "document_cleanup_delay": 5}
    # the module's marker first: the test's own wins
    for marker in reversed(list(request.node.iter_markers("cocalc"))):
        config.update(marker.kwargs)
    if "store_backend" in request.fixturenames:  # the test runs on both backends
        spec = request.getfixturevalue("store_spec")
        if spec.startswith("postgresql://"):
            config["store_url"] = spec
    return config


@pytest.fixture
def kernel_pool_config(request) -> dict:
    """``c.KernelPool``: off unless the test is marked ``@pytest.mark.pool(...)`` (a pooled
    kernel is a process that tests without kernels would pay for on two cores)."""
    config: dict = {"size": 0}
    markers = list(request.node.iter_markers("pool"))
    if markers:
        # (a pool that grows with demand is asked for: each kernel is a process to pay for)
        config = {"size": 1, "max_size": 1, "launch_delay_ms": 0}
        for marker in reversed(markers):  # the module's marker first: the test's own wins
            config.update(marker.kwargs)
    return config


@pytest.fixture
def jp_server_config(tmp_path, cocalc_config, kernel_pool_config):
    return Config(
        {
            "KernelPool": kernel_pool_config,
            "ServerApp": {
                "jpserver_extensions": {
                    **UNNEEDED_EXTENSIONS,
                    "jupyter_cocalc_sync": True,
                    "jupyter_server_fileid": True,
                },
                "allow_root": True,
            },
            "CocalcSync": {"store_path": str(tmp_path / "cocalc.db"), **cocalc_config},
            "BaseFileIdManager": {"db_path": str(tmp_path / "file_id_manager.db")},
        }
    )


@pytest.fixture
def server(jp_serverapp, http_server, jp_http_port, jp_base_url, jp_asyncio_loop):
    """The in-process server (pytest-jupyter), with an authenticated client."""
    from helpers import Server

    srv = Server(
        f"http://127.0.0.1:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token
    )
    yield srv
    jp_asyncio_loop.run_until_complete(srv.aclose())


@pytest.fixture
def live(server, jp_asyncio_loop):
    """Opens notebooks with SyncDB clients (closed after the test)."""
    clients = []

    async def open_notebook(path: str = "nb.ipynb"):
        from jupyter_cocalc_sync.client import CocalcSyncClient

        client = CocalcSyncClient(server.base_url, server.token)
        clients.append(client)
        return await client.open(path)

    yield open_notebook
    for client in clients:
        jp_asyncio_loop.run_until_complete(client.close())


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL server of the test session's own (``tests/postgres.py``)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = PostgresCluster()
    yield cluster
    cluster.destroy()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request) -> str:
    """Each store-facing test runs on both backends."""
    return request.param


@pytest.fixture
def store_spec(store_backend, tmp_path, request) -> str:
    """The test's store: an SQLite file, or a fresh PostgreSQL database's URL."""
    if store_backend == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_cluster").create_database()


@pytest.fixture
def root_dir(jp_root_dir) -> Path:
    return Path(jp_root_dir)


@pytest.fixture
def corpus_dir() -> Path:
    return CORPUS


def pytest_report_header(config):
    state = "present" if CORPUS.is_dir() else "absent"
    return f"shared corpus: {CORPUS} ({state}); cpu={os.cpu_count()}"
