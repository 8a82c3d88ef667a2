"""Session-scoped servers for the differential suite: the stock one (the oracle) and ours,
reused by every sequence (each on a notebook file of its own)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import Server

from .runner import LoopThread, Target
from .stacks import OurServer, StockServer, stock_venv_problem

#: on a developer machine without ``.venv-stock``, skip instead of failing (never in CI)
SKIP_WITHOUT_STOCK = "DIFFERENTIAL_SKIP_WITHOUT_STOCK"
#: the random sequences (minutes) run in CI, or where this is set
RUN_BULK = "DIFFERENTIAL_BULK"


def pytest_collection_modifyitems(config, items) -> None:
    if os.environ.get("CI") or os.environ.get(RUN_BULK):
        return
    skip = pytest.mark.skip(reason=f"random differential sequences: CI runs them ({RUN_BULK}=1)")
    for item in items:
        if item.get_closest_marker("differential_bulk"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def _require_stock() -> None:
    problem = stock_venv_problem()
    if problem is None:
        return
    if os.environ.get(SKIP_WITHOUT_STOCK) and not os.environ.get("CI"):
        pytest.skip(f"the stock server is needed: {problem} ({SKIP_WITHOUT_STOCK} is set)")
    pytest.fail(f"the differential suite needs the stock server: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def targets(tmp_path_factory, loop: LoopThread) -> Iterator[tuple[Target, Target]]:
    """(stock, ours): both servers started, with an HTTP client each."""
    _require_stock()
    base = tmp_path_factory.mktemp("differential")
    for name in ("stock", "ours"):
        (base / name / "root").mkdir(parents=True)
    stock = StockServer(base / "stock" / "root", base / "stock" / "state")
    ours = OurServer(base / "ours" / "root", base / "ours" / "state")
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(stock.start), pool.submit(ours.start)]:
                started.result()
        started_targets = (
            Target("stock", stock, Server(stock.url, stock.token)),
            Target("ours", ours, Server(ours.url, ours.token)),
        )
        yield started_targets
        for target in started_targets:  # a restart gives a target a new client
            loop.run(target.client.aclose())
    finally:
        ours.stop()
        stock.stop()
