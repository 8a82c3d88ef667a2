"""The projection log and the stateless result cache on each store backend."""

from __future__ import annotations

import time

import pytest
from postgres import worker_for

from jupyter_cocalc_sync.stateless.cache import ResultCache
from jupyter_cocalc_sync.store import ChangeLog
from jupyter_cocalc_sync.store.projections import ProjectionLog


@pytest.fixture
def changelog(store_spec):
    log = ChangeLog(worker_for(store_spec))
    log.open_blocking()
    yield log
    log.close()
    log.worker.close()


async def test_the_projection_keeps_its_session_and_knows_a_clean_close(changelog):
    projections = ProjectionLog(changelog)
    projections.open_blocking()
    session = await projections.session_id("file-1")
    assert await projections.session_id("file-1") == session  # stable
    assert await projections.session_id("file-2") != session
    assert await projections.append("file-1", b"\x00\x00") == 1
    assert not (await projections.load("file-1", table_version=7)).in_sync
    await projections.closed("file-1", table_version=7)
    stored = await projections.load("file-1", table_version=7)
    assert (stored.session_id, stored.in_sync, stored.state is not None) == (session, True, True)
    assert not (await projections.load("file-1", table_version=8)).in_sync  # the table went on
    await projections.forget("file-1")
    assert await projections.session_id("file-1") != session  # a new YNotebook, a new session


async def test_the_result_cache_replaces_expires_and_purges(changelog, monkeypatch):
    cache = ResultCache(changelog.worker, ttl=60)
    cache.open_blocking()
    assert await cache.get("k") is None
    await cache.put("k", [{"output_type": "stream", "text": "1"}])
    await cache.put("k", [{"output_type": "stream", "text": "2"}])  # the same key again
    assert await cache.get("k") == [{"output_type": "stream", "text": "2"}]
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    assert await cache.get("k") is None  # expired
    await cache.put("other", [])  # a write purges what expired
    rows = await changelog.worker.run(
        lambda conn: conn.execute("SELECT key FROM stateless_results ORDER BY key").fetchall()
    )
    assert [r[0] for r in rows] == ["other"]
