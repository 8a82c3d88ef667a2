"""The browser tier's fixtures: JupyterLab with this extension, driven in headless Chromium.

One JupyterLab server per configuration for the session (``lab_servers``; a module picks its
configuration by overriding ``lab_config``), one Chromium per module; each test gets a folder
of the server's root of its own (``lab_server``) and its own browser contexts (``lab``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

_phase_reports = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    item.stash.setdefault(_phase_reports, {})[report.when] = report
    return report


def _skip_without_chromium() -> None:
    from browser_support import chromium_missing_reason

    if reason := chromium_missing_reason():
        pytest.skip(reason)


@pytest.fixture(scope="module")
def lab_config() -> dict[str, Any]:
    """Server config of the module's ``lab_server`` (a module overrides this fixture)."""
    from lab_servers import DEFAULT_LAB_CONFIG

    return DEFAULT_LAB_CONFIG


@pytest.fixture(scope="session")
def lab_servers(tmp_path_factory) -> Iterator[Any]:
    """The session's JupyterLab servers, one per configuration, stopped at its end."""
    from browser_support import CLOSED_TAB_WRITE
    from lab_servers import LabServers

    servers = LabServers(tmp_path_factory)
    yield servers
    servers.stop_all(allowed_errors=[CLOSED_TAB_WRITE])


@pytest.fixture(scope="module")
def shared_lab_server(lab_servers, lab_config) -> Any:
    """The JupyterLab server with ``lab_config`` (started here, before any test's process
    snapshot: the session owns it)."""
    _skip_without_chromium()
    return lab_servers.get(lab_config)


@pytest.fixture
def lab_server(shared_lab_server, tmp_path) -> Iterator[Any]:
    """The test's ``LabFolder`` of the shared server; its kernels are shut down at its end."""
    from lab_servers import LabFolder

    folder = LabFolder(shared_lab_server, tmp_path.name)
    yield folder
    folder.end()


@pytest.fixture(scope="module")
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """pytest-jupyter's loop (it is autouse), made before ``browser`` and closed after it.

    While Playwright's sync API lives, its event loop is the thread's running loop: a loop
    fixture made then would be handed that loop (and close it). The browser tests are
    synchronous; this loop only has to exist.
    """
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def jp_server_cleanup() -> None:
    """pytest-jupyter's cleanup of its in-process server (autouse), which runs
    ``jp_asyncio_loop``: the browser tests start no in-process server."""


@pytest.fixture(scope="module")
def browser(jp_asyncio_loop) -> Iterator[Any]:
    """Headless Chromium for the module (each user of each test gets its own context)."""
    _skip_without_chromium()
    from browser_support import launch_chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def lab(request, browser, lab_server, tmp_path) -> Iterator[Any]:
    """Opens notebooks of the test's folder as users (``lab.open("x.ipynb")``); on failure
    saves screenshots, the browser consoles and the server log into ``tmp_path/"artifacts"``."""
    from browser_support import LabSession

    session = LabSession(browser, lab_server, tmp_path / "artifacts")
    yield session
    reports = request.node.stash.get(_phase_reports, {})
    if any(r.failed for r in reports.values()):
        where = session.save_artifacts()
        print(f"browser test artifacts (screenshots, consoles, server log): {where}")
    session.close()
