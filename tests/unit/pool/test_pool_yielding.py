"""Refills wait for kernel starts to be over, except on an empty pool (``pool.yielding``)."""

from __future__ import annotations

import asyncio

from jupyter_cocalc_sync.pool.yielding import StartsUnderWay


async def test_refills_wait_for_the_starts_unless_the_pool_is_empty():
    starts = StartsUnderWay(lambda: 0.0, list, asyncio.ensure_future)
    with starts.start():
        waiting = asyncio.ensure_future(starts.until_quiet())
        # overlapping opens would keep an empty pool empty: its refill goes ahead
        await asyncio.wait_for(starts.until_quiet(empty=True), 10)
        await asyncio.sleep(0)  # (lets the other waiter run: it stays blocked on the start)
        assert starts.yielding() and not waiting.done()
    await asyncio.wait_for(waiting, 10)
    assert not starts.yielding()
