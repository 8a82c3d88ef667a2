"""AnyIO's worker threads must not keep a stopped server's process alive.

``anyio.to_thread.run_sync`` (jupyter_server's contents manager, nbconvert's handler, this
package) runs calls in worker threads that are not daemon threads. A worker stops when the
task that started it ends (or when a later call finds it idle for 10 s). jupyter_server's
clean stop (SIGTERM, and SIGINT here: ``app._stop_gracefully_on_sigint``) ends the event loop
with such tasks still pending — an open websocket's handler, a request waiting on its worker
— so they never end, and the interpreter's exit waits for their workers forever.

Once the main thread has finished, the loop is gone and nothing can hand a worker work again:
``release_workers_at_exit`` tells each worker to stop then (one finishing a call finishes it
first).
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_watching = False


def release_workers_at_exit() -> None:
    """Stop AnyIO's worker threads once the main thread has finished (idempotent)."""
    global _watching
    with _lock:
        if _watching:
            return
        _watching = True
    threading.Thread(
        target=_release_after_main_thread, name="release AnyIO workers at exit", daemon=True
    ).start()


def _release_after_main_thread() -> None:
    # the interpreter's exit releases the main thread's joiners before it joins the others
    threading.main_thread().join()
    from anyio._backends._asyncio import WorkerThread

    for thread in threading.enumerate():
        if isinstance(thread, WorkerThread):
            thread.queue.put(None)  # AnyIO's own stop command (blocks while its queue is full)
