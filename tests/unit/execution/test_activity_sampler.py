"""``NotebookActivity``'s kernel sampler: closing the notebook ends it, whatever it was doing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from jupyter_cocalc_sync.execution.activity import NotebookActivity

#: how long a close may take before it counts as hung (it takes a few loop turns)
HANG_S = 30


class Kernels:
    """A server with no kernel for the notebook; says when the sampler asked for one."""

    def __init__(self) -> None:
        self.kernel_manager: dict[str, Any] = {}
        self.asked = asyncio.Event()

    async def session_for(self, path: str) -> None:
        self.asked.set()


async def test_a_close_while_a_batch_wakes_the_sampler_ends_the_sampler():
    """A batch starting (the sampler woken) in the same loop turn as the notebook's close: on
    Python 3.11 ``asyncio.wait_for`` returned the wake-up and dropped the cancellation, the
    sampler went on forever, and the close (and the server's stop) waited for it forever."""
    kernels = Kernels()
    document = SimpleNamespace(
        path="nb.ipynb", file_id="f", db=SimpleNamespace(doc=SimpleNamespace(client_id=1))
    )
    runner = SimpleNamespace(kernel=None, on_progress=lambda listener: lambda: None)
    activity = NotebookActivity(
        document,  # type: ignore[arg-type]
        runner,  # type: ignore[arg-type]
        kernels,  # type: ignore[arg-type]
        server_state=lambda state: None,
    )
    await kernels.asked.wait()  # the first sample is taken: the sampler now waits
    activity.run_progress(0, 1, True)  # a batch starts: the sampler's wait is over
    await asyncio.sleep(0)  # (the turn in which the wait ends; the close comes next)
    closing = asyncio.ensure_future(activity.close())
    done, _ = await asyncio.wait([closing], timeout=HANG_S)
    assert done, "the close waited for a sampler that never ended"
