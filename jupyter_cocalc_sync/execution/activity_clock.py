"""``ActivityClock``: the extension's work counts as server activity.

jupyter_server's ``last_activity`` (``/api/status``, and what ``jupyterhub-singleuser`` reports
to the hub, which ``jupyterhub-idle-culler`` reads) is the latest of its API requests, kernel
messages and every ``*_last_activity`` web-app setting. Work of this extension is none of
those: a cell the server runs for a minute without printing, with no browser open, or peers
editing over a room's websocket. So the extension keeps its own ``cocalc_sync_last_activity``
setting: refreshed by every message a room receives, and every ``interval`` seconds while any
runner has work. When nothing runs and no peer speaks, it stays put and the server may be
culled.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, Protocol

#: the web-app setting jupyter_server's ``last_activity()`` reads (any key ending so counts)
SETTING = "cocalc_sync_last_activity"


class WorkTracker(Protocol):
    """What a runner tells about its work (``ActivityClock`` is one)."""

    def work_started(self) -> None: ...

    def work_ended(self) -> None: ...


class ActivityClock:
    """Marks the server active in ``settings`` (the web app's) for the extension's work."""

    def __init__(self, settings: MutableMapping[str, Any], interval: float) -> None:
        if interval <= 0:
            raise ValueError("the activity interval must be > 0 seconds")
        self.settings = settings
        self.interval = interval
        self._working = 0
        #: the next refresh, armed while there is work, and left to lapse once there is none:
        #: runs of a few milliseconds back to back neither arm nor cancel one each
        self._ticker: asyncio.TimerHandle | None = None

    def touch(self) -> None:
        """Something happened now (a peer's message)."""
        # (aware UTC, like jupyter_server's own timestamps it is compared with)
        self.settings[SETTING] = datetime.now(UTC)

    @property
    def working(self) -> int:
        """How many pieces of work are going on now."""
        return self._working

    def work_started(self) -> None:
        """Work began (a runner's queue got cells); the server stays active until it ends."""
        self._working += 1
        self.touch()
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def work_ended(self) -> None:
        """Work that ``work_started`` announced is over."""
        if self._working == 0:
            raise RuntimeError("work_ended() without work_started()")
        self._working -= 1
        self.touch()

    def _tick(self) -> None:
        # a silent cell sends no message anywhere: time is the only signal that it still runs
        self._ticker = None
        if self._working:
            self.touch()
            self._ticker = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
