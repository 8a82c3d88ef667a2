"""The browser tier's fixtures: JupyterLab with this extension, driven in headless Chromium."""

from __future__ import annotations

import pytest

_phase_reports = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    item.stash.setdefault(_phase_reports, {})[report.when] = report
    return report


@pytest.fixture
def lab_config() -> dict:
    """Server config of ``lab_server`` (tests may mutate it): quick autosave and file polls."""
    return {"CocalcSync": {"autosave_delay": 0.2, "file_poll_interval": 0.2}}


@pytest.fixture
def lab_server(tmp_path, lab_config):
    """JupyterLab with this extension on ``tmp_path/"root"``, its state in ``tmp_path/"state"``."""
    from browser_support import chromium_missing_reason, start_lab, stop_lab

    if reason := chromium_missing_reason():
        pytest.skip(reason)
    server = start_lab(tmp_path, lab_config)
    yield server
    stop_lab(server)


@pytest.fixture
def browser(jp_asyncio_loop):
    """Headless Chromium (each user gets its own context).

    Per test, inside ``jp_asyncio_loop``: while Playwright's sync API lives, its event loop is
    the thread's running loop, which pytest-jupyter's per-test loop fixtures must not see.
    """
    from browser_support import chromium_missing_reason

    if reason := chromium_missing_reason():
        pytest.skip(reason)
    from browser_support import launch_chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def lab(request, browser, lab_server, tmp_path):
    """Opens notebooks as users (``lab.open("x.ipynb")``); on failure saves screenshots, the
    browser consoles and the server log into ``tmp_path/"artifacts"``."""
    from browser_support import LabSession

    session = LabSession(browser, lab_server, tmp_path / "artifacts")
    yield session
    reports = request.node.stash.get(_phase_reports, {})
    if any(r.failed for r in reports.values()):
        where = session.save_artifacts()
        print(f"browser test artifacts (screenshots, consoles, server log): {where}")
    session.close()
