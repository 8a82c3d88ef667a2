"""``POST /api/cocalc-sync/execute`` under load: twenty requests at once, twenty fresh kernels
(about 25 s of CPU on two cores: in the stress tier, not in the default run)."""

from __future__ import annotations

import asyncio

import pytest

EXECUTE = "/api/cocalc-sync/execute"

pytestmark = pytest.mark.cocalc(stateless_pool_size=0)


async def test_twenty_concurrent_requests_all_answer(server):
    replies = await asyncio.gather(
        *(server.http.post(EXECUTE, json={"code": f"{i} * 3"}) for i in range(20))
    )
    assert [r.status_code for r in replies] == [200] * 20
    results = [
        [o["data"]["text/plain"] for o in r.json()["outputs"] if "data" in o] for r in replies
    ]
    assert results == [[str(i * 3)] for i in range(20)]
