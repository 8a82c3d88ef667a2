"""``ExecutionQueue``: a request that goes idle before its reply arrives is checked on after
``REPLY_GRACE`` unless the reply comes first (nearly always: then nothing is left scheduled)."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_client.session import Session

from jupyter_cocalc_sync.kernels.emitter import ExecutionQueue


class SentAtOnce:
    """A connection whose every send is taken at once."""

    def start_send(self, channel: str, msg: dict[str, Any]) -> asyncio.Future[None]:
        sent = asyncio.get_running_loop().create_future()
        sent.set_result(None)
        return sent


class Kernel:
    def __init__(self) -> None:
        self.connection = SentAtOnce()

    async def interrupt(self) -> None:
        raise AssertionError("nothing is interrupted here")


async def test_a_reply_after_the_idle_status_cancels_the_check_for_it() -> None:
    session = Session()
    queue = ExecutionQueue(Kernel(), session)  # type: ignore[arg-type]
    emitter = queue.submit({"code": "1 + 1", "silent": False})
    parent = emitter.request["header"]
    queue.on_iopub(session.msg("status", {"execution_state": "idle"}, parent=parent))
    check = emitter._reply_check
    assert check is not None and not check.cancelled() and not emitter.done
    queue.on_shell(session.msg("execute_reply", {"status": "ok"}, parent=parent))
    assert emitter.done and emitter.reply == {"status": "ok"}
    assert check.cancelled()  # (no loop wake-up REPLY_GRACE later, for nothing)
