"""A process whose event loop stopped with a task still waiting on an AnyIO worker exits.

jupyter_server's clean stop ends the loop that way (an open websocket's handler started the
worker); without ``release_workers_at_exit`` the interpreter's exit waits for the worker
forever.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: the event loop stops while the task that started the worker still waits (as a websocket's
#: handler does): nothing ends the task, so AnyIO never tells its worker to stop
PROGRAM = textwrap.dedent(
    """
    import asyncio
    import anyio
    from jupyter_cocalc_sync.worker_threads import release_workers_at_exit

    async def long_lived_request():
        await anyio.to_thread.run_sync(lambda: None)
        await asyncio.Event().wait()

    async def stop(loop):
        await asyncio.sleep(0.2)
        release_workers_at_exit()
        loop.stop()

    loop = asyncio.new_event_loop()
    loop.create_task(long_lived_request())
    loop.create_task(stop(loop))
    loop.run_forever()
    print("loop stopped", flush=True)
    """
)

#: far above a healthy exit (well under a second), far below "forever"
EXIT_S = 20


def test_the_process_exits_once_its_loop_has_stopped() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=EXIT_S,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "loop stopped\n"
