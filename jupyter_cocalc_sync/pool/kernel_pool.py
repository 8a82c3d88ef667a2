"""The kernel pool: kernels started ahead of time, so opening a notebook gets one at once.

A cold ipykernel needs ~0.5 s of CPU before it answers (imports, IPython shell); a pooled one
was started earlier, answered ``kernel_info`` and ran one silent warm-up cell, so handing it
out costs sending one silent ``execute_request`` that re-points it at the notebook (working
directory, ``JPY_SESSION_NAME``/``__session__``) and a few bookkeeping updates.

Pooled kernels are started by ``PoolingKernelManager`` (the pool's parent) with the same
launch options a stock start would use, minus what is specific to one notebook (working
directory, ``JPY_SESSION_NAME``): that is the pool key. Until claimed they live only here,
not in the manager's kernel map, so ``/api/kernels``, ``/api/status``, the culler and the
"shut down when idle" timer never see them.

The parts: ``pool_settings`` (settings, pool key), ``pool_filling`` (starting, warming up,
replacing and recycling pooled kernels); this module claims and re-points them. Design choices
worth knowing:

* A start that finds no ready kernel but a pooled one still booting takes that one over
  (it started earlier, so it is ready sooner than a fresh start); otherwise it falls back to a
  normal start. Nobody waits in a queue behind another user's claim.
* Only python kernelspecs that run ipykernel are pooled: re-pointing is Python code run in
  the kernel. Julia kernels (slow to start, but their working directory cannot be changed the
  same way) and names on ``exclude`` are never pooled.
* A pooled kernel found dead at the claim is discarded and replaced; one that does not run
  the re-pointing code once claimed is restarted (in the notebook's folder) before any
  client's request reaches it (``claims``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jupyter_client.kernelspec import NoSuchKernel

from ..errors_seen import count_error
from ..kernels.channels import stop_started
from .filling import POOL_ERRORS, KeyState, PoolFilling
from .pooled import PooledKernel, PooledKernelError, reply_to, send_request
from .settings import PER_NOTEBOOK_ENV, PoolKey

__all__ = ["KernelPool", "PoolKey", "PooledKernel", "PooledKernelError", "repoint_code"]

#: how long a claimed kernel may take to run the re-pointing code before it is restarted
REPOINT_TIMEOUT_S = 10.0


def repoint_code(cwd: str, session_name: str | None, *, set_session: bool) -> str:
    """Python that re-points a pooled ipykernel at a notebook, leaving no names behind.

    ipykernel reads ``JPY_SESSION_NAME`` (→ ``__session__``) and the working directory only
    when it starts; ``sys.path`` holds ``''``, so imports follow the new directory.
    """
    session_lines = ""
    if set_session:
        session_lines = (
            "    if session is None:\n"
            "        os.environ.pop('JPY_SESSION_NAME', None)\n"
            "        ns.pop('__session__', None)\n"
            "    else:\n"
            "        os.environ['JPY_SESSION_NAME'] = session\n"
            "        ns['__session__'] = session\n"
        )
    return (
        "def _cocalc_repoint(cwd, session):\n"
        "    import os\n"
        "    os.chdir(cwd)\n"
        "    ns = get_ipython().user_ns\n"
        "    if isinstance(ns.get('_dh'), list):\n"
        "        ns['_dh'][:] = [cwd]\n"
        f"{session_lines}"
        f"_cocalc_repoint({cwd!r}, {session_name!r})\n"
        "del _cocalc_repoint\n"
    )


class KernelPool(PoolFilling):
    """Pre-started kernels for ``PoolingKernelManager`` (configure as ``c.KernelPool.*``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._not_pooled: dict[str, str] = {}
        self._started = False
        self._maintenance: asyncio.Task[None] | None = None
        self._claiming: set[PooledKernel] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, initial_delay: float = 0.0) -> bool:
        """Start filling the pool for the default kernel (idempotent, returns at once).

        Needs a running event loop; returns False (and stays unstarted) without one, so a
        later call from the loop can start it.
        """
        if self._started or self._closed:
            return self._started
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._started = True
        if self.size == 0:
            self.log.info("Kernel pool disabled (KernelPool.size = 0)")
            return True
        self._maintenance = asyncio.create_task(self._maintain())
        self._spawn_background(self._start_default(initial_delay))
        return True

    async def _start_default(self, delay: float) -> None:
        name = self.manager.default_kernel_name
        reason = await self._not_poolable_reason(name)
        excluded = sorted({*self.exclude, "*julia*"})
        if reason is not None:
            self.log.info(
                "Kernel pool: size %d per key; default kernel %r is not pooled (%s); "
                "never pooled: %s",
                self.size,
                name,
                reason,
                ", ".join(excluded),
            )
            return
        key = PoolKey.for_launch(name, self.manager.pool_launch_kwargs(name))
        self._default_key = key
        self._want(key, delay)
        self.log.info(
            "Kernel pool: %d ready kernel(s) per key, filling %r; refill delay %g ms, "
            "recycled after %g s; never pooled: %s",
            self.size,
            key.label,
            self.launch_delay_ms,
            self.timeout_s,
            ", ".join(excluded),
        )

    async def close(self) -> None:
        """Stop every pooled kernel (ready or starting) and stop refilling; for server exit."""
        self._closed = True
        self.starts.close()
        tasks: list[asyncio.Task[Any]] = []
        if self._maintenance is not None:
            tasks.append(self._maintenance)
        # Kernels being re-pointed right now are stopped too: their claim then falls back to
        # a normal start, as any start racing the server's shutdown does.
        entries = list(self._claiming)
        for state in self._keys.values():
            if state.filler is not None:
                tasks.append(state.filler)
            tasks.extend(slot.task for slot in state.starting if slot.task is not None)
            entries.extend(state.ready)
            state.ready.clear()
        for task in tasks:
            task.cancel()
        for entry in entries:
            entry.release()
        # A cancelled start stops its own kernel; background tasks are discards in progress.
        await asyncio.gather(*tasks, *(self._stop(e.km) for e in entries), return_exceptions=True)
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self._keys.clear()
        self._notify()

    # -- claiming ----------------------------------------------------------------------------

    async def claim(self, launch_kwargs: dict[str, Any]) -> PooledKernel | None:
        """A ready kernel re-pointed for this start, or None (then start one normally).

        ``launch_kwargs`` are what jupyter_server would pass to the kernel manager:
        ``kernel_name``, ``cwd`` (the notebook's folder), ``env`` and other launch options.
        """
        if self._closed or self.size == 0:
            return None
        name = launch_kwargs.get("kernel_name") or self.manager.default_kernel_name
        reason = await self._not_poolable_reason(name)
        if reason is not None:
            return None
        key = PoolKey.for_launch(name, launch_kwargs)
        state = self._keys.get(key)
        if state is not None:
            state.demand.record(time.monotonic())
        t0 = time.perf_counter()
        try:
            while state is not None and not self._closed:
                entry = await self._next_candidate(state)
                if entry is None:
                    break
                self._claiming.add(entry)
                try:
                    await self._repoint(entry, launch_kwargs)
                except Exception as e:  # whatever went wrong, the start must not fail
                    if not isinstance(e, POOL_ERRORS):  # a bug of ours: counted, logged
                        what = f"re-pointing pooled kernel {entry.kernel_id}"
                        count_error("pool.repoint", e, what, logger=self.log)
                    self.log.warning("Pooled kernel %s discarded: %r", entry.kernel_id, e)
                    self._counters["replaced"] += 1
                    self._discard(entry)
                    continue
                finally:
                    self._claiming.discard(entry)
                self._counters["claimed"] += 1
                self.log.info(
                    "Kernel %s taken from the pool (%s) in %.1f ms",
                    entry.kernel_id,
                    key.label,
                    (time.perf_counter() - t0) * 1000,
                )
                return entry
            self._counters["missed"] += 1
            return None
        finally:
            if state is None:  # the key's first start: its demand counts from here
                self._key_state(key).demand.record(time.monotonic())
            self._want(key, 0.0)
            self._notify()

    async def _next_candidate(self, state: KeyState) -> PooledKernel | None:
        """The oldest ready kernel, else one still starting (taken over), else None."""
        if state.ready:
            entry = state.ready.popleft()
            await self.starts.restore(getattr(entry.km.provisioner, "pid", None))  # (if lowered)
            return entry
        slot = next((s for s in state.starting if not s.claimed and s.task is not None), None)
        if slot is None or slot.task is None:
            return None
        slot.claimed = True
        if slot.km is not None:  # it boots on at normal priority: someone waits for it
            await self.starts.restore(getattr(slot.km.provisioner, "pid", None))
        try:
            entry = await asyncio.shield(slot.task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or not current.cancelling():
                return None  # the pool is closing
            # The start request itself went away: give the kernel back to the pool.
            slot.claimed = False
            task = slot.task
            if task.done() and not task.cancelled() and task.exception() is None:
                state.ready.append(task.result())
            raise
        except Exception:  # (reported once, by the filler that started it)
            return None  # its start failed
        self._counters["taken_while_starting"] += 1
        return entry

    async def _repoint(self, entry: PooledKernel, launch_kwargs: dict[str, Any]) -> None:
        """Make the kernel look as if it had been started for this notebook.

        Only the sending of the re-pointing code is awaited: the kernel runs it while the
        session's answer travels to the browser and its websocket connects, which saves the
        claim a kernel round trip. ``entry.repointed`` says later whether the kernel ran it;
        the manager's ``claims`` hold every client of the kernel back until then.
        """
        km = entry.km
        if not await km.is_alive():
            raise PooledKernelError("its process is gone")
        cwd = launch_kwargs.get("cwd") or os.getcwd()
        env = launch_kwargs.get("env")
        session_name = env.get("JPY_SESSION_NAME") if env is not None else None
        code = repoint_code(str(cwd), session_name, set_session=env is not None)
        msg_id = await send_request(
            entry, "execute", REPOINT_TIMEOUT_S, code=code, silent=True, store_history=False
        )
        # What a restart reuses, and what /api/resolvePath resolves against.
        launch_args: dict[str, Any] = km._launch_args if km._launch_args is not None else {}
        if "cwd" in launch_kwargs:
            launch_args["cwd"] = cwd
        else:
            launch_args.pop("cwd", None)
        if env is not None:
            launch_args["env"] = dict(env)
        km._launch_args = launch_args
        if km.provisioner is not None and hasattr(km.provisioner, "cwd"):
            km.provisioner.cwd = cwd
        km.autorestart = entry.autorestart
        km.start_restarter()
        entry.repointed = self._spawn_background(self._confirm_repoint(entry, msg_id))

    async def _confirm_repoint(self, entry: PooledKernel, msg_id: str) -> bool:
        """Wait for the kernel to run the re-pointing code: False if it did not (it froze, died,
        or the code failed), and must be restarted (``claims``: it then comes back in the
        notebook's folder). Rare: the kernel was alive and took the request a moment ago."""
        try:
            reply = await reply_to(entry, msg_id, "execute", REPOINT_TIMEOUT_S)
            if reply["content"].get("status") != "ok":
                raise PooledKernelError(f"re-pointing failed: {reply['content'].get('evalue')}")
            return True
        except Exception as e:  # (whatever it was, the kernel is restarted: ``claims``)
            if self._closed:  # the server is stopping: so is the kernel
                return True
            if not isinstance(e, POOL_ERRORS):  # a bug of ours: counted, logged
                what = f"the re-pointing of kernel {entry.kernel_id}"
                count_error("pool.repoint_reply", e, what, logger=self.log)
            self._counters["repoint_failed"] += 1
            self.log.warning("Kernel %s: no answer to the re-pointing: %r", entry.kernel_id, e)
            return False
        finally:
            stop_started(entry.client, ("shell",))

    # -- poolability -------------------------------------------------------------------------

    async def _not_poolable_reason(self, kernel_name: str) -> str | None:
        """Why kernels of this name are never pooled, or None if they are."""
        if "julia" in kernel_name.lower():
            reason: str | None = "Julia kernels are never pooled"
        elif kernel_name in self.exclude:
            reason = "listed in KernelPool.exclude"
        else:
            reason = await asyncio.to_thread(self._spec_reason, kernel_name)
        if reason is not None and kernel_name not in self._not_pooled:
            self.log.info("Kernel pool: %r kernels are not pooled: %s", kernel_name, reason)
        if reason is not None:
            self._not_pooled[kernel_name] = reason
        return reason

    def _spec_reason(self, kernel_name: str) -> str | None:
        specs = self.manager.kernel_spec_manager
        if specs is None:
            return "the kernel manager has no kernelspec manager"
        try:
            spec = specs.get_kernel_spec(kernel_name)
        except NoSuchKernel:
            return "no such kernelspec"
        language = (spec.language or "").lower()
        if language != "python":
            return f"language {spec.language!r} has no re-pointing support"
        if not any("ipykernel" in arg for arg in spec.argv):
            return "not an ipykernel kernel"
        provisioner = (spec.metadata or {}).get("kernel_provisioner", {})
        if provisioner.get("provisioner_name", "local-provisioner") != "local-provisioner":
            return "it uses a custom kernel provisioner"
        if any(var in str(value) for value in spec.env.values() for var in PER_NOTEBOOK_ENV):
            return "its kernelspec env uses per-notebook variables"
        return None

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The pool's settings and per-key counts, JSON-able."""
        return {
            "enabled": self.size > 0 and not self._closed,
            "started": self._started,
            "size": self.size,
            "max_size": self.max_size,
            "max_memory_mb": self.max_memory_mb,
            "demand_window_s": self.demand_window_s,
            "memory_mb": round(self.pooled_bytes() / 2**20, 1),
            "timeout_s": self.timeout_s,
            "launch_delay_ms": self.launch_delay_ms,
            "exclude": sorted({*self.exclude, "*julia*"}),
            "default": self._default_key.label if self._default_key else None,
            "kernels": {
                key.label: {
                    "kernel_name": key.kernel_name,
                    "ready": len(state.ready),
                    "starting": sum(1 for s in state.starting if not s.claimed),
                    "target": self.target(state),
                }
                for key, state in self._keys.items()
            },
            "not_pooled": dict(self._not_pooled),
            "counters": dict(self._counters),
        }
