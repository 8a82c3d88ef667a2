"""The kernel's comm traffic and the iopub messages that belong to none of our requests.

A widget is a comm between the kernel and its clients. The server is one of those clients: it
sees every ``comm_open``, ``comm_msg`` and ``comm_close`` on iopub (iopub is broadcast, so
that includes what a JupyterLab tab's own kernel websocket caused) and the outputs of code that
no request of ours ran (a widget callback triggered by a browser). ``IopubObservers`` hands
them to whoever subscribed, before the execute request they belong to sees them: an observer
that returns True keeps a message from that request (an Output widget capturing it).
``CommSender`` sends ``comm_msg`` and ``comm_info_request`` on our shell channel.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import KernelError
from ..errors_seen import count_error
from .channels import Message, Replies

log = logging.getLogger(__name__)


class IopubObserver(Protocol):
    """Who wants the kernel's comm messages and the iopub messages of others' requests."""

    def on_iopub(self, msg: Message, ours: bool) -> bool:
        """``ours``: the message belongs to the execute request in flight. Return True to
        keep it from that request (a comm message the observer handles, a captured output)."""


class IopubObservers:
    """The observers of one kernel (they outlive its processes: restarts keep them)."""

    def __init__(self) -> None:
        self._observers: list[IopubObserver] = []

    def add(self, observer: IopubObserver) -> Callable[[], None]:
        self._observers.append(observer)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._observers.remove(observer)

        return remove

    def deliver(self, msg: Message, ours: bool) -> bool:
        """Whether an observer took ``msg`` away from the request it belongs to."""
        consumed = False
        for observer in list(self._observers):
            try:
                consumed = observer.on_iopub(msg, ours) or consumed
            except Exception as e:  # (the other observers, and the request, still get it)
                what = f"an iopub observer on {msg['msg_type']}"
                count_error("kernel.iopub_observer", e, what, logger=log)
        return consumed


class CommSender:
    """Sends comm messages over a kernel's current connection."""

    def __init__(self, connection: Callable[[], Replies | None]) -> None:
        self._connection = connection

    def _conn(self) -> Replies:
        conn = self._connection()
        if conn is None:
            raise KernelError("The kernel is not running; the widget message was not sent.")
        return conn

    async def send(
        self, comm_id: str, data: dict[str, Any], buffers: Sequence[bytes] = ()
    ) -> Message:
        """Send ``comm_msg`` ``data`` (with binary ``buffers``) to the comm ``comm_id``;
        returns the message sent (its ``header.msg_id`` is the parent of what it causes)."""
        conn = self._conn()
        msg = conn.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        msg["buffers"] = list(buffers)
        await conn.send("shell", msg)
        return msg

    async def comm_info(self, target_name: str | None = None) -> dict[str, Any]:
        """The kernel's open comms: ``{comm_id: {"target_name": …}}``."""
        content = {"target_name": target_name} if target_name else {}
        reply = await self._conn().request("comm_info_request", content)
        comms = reply.get("comms")
        return comms if isinstance(comms, dict) else {}
