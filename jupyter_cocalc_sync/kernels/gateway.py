"""Our channels to a kernel that runs on a gateway (``--gateway-url``): one websocket.

A gateway kernel has no local process and no ZMQ sockets: its channels are the gateway's
``/api/kernels/{id}/channels`` websocket, which carries Jupyter messages as JSON with a
``channel`` field (binary frames when they have buffers) — the protocol jupyter_server speaks
to gateways itself. jupyter_server's ``GatewayKernelClient`` offers the same through
jupyter_client's channel API, but it waits for messages by spinning the event loop
(``asyncio.sleep(0)`` until a queue fills) and connects with a blocking websocket client, so
each of our long-lived readers would keep a core busy; this connection reads with tornado's
websocket client (jupyter_server's own gateway websocket uses it), one awaited read at a time.

The kernel's death is noticed without polling: the gateway announces a restart of a kernel
that died (``status: restarting``) and a kernel it could not bring back (``status: dead``),
and a closed websocket means the kernel, or the gateway, is gone. A restart someone asked
for (this extension, JupyterLab, the REST API) is seen in jupyter_server's kernel action
events (``RemoteRestarts``), since the websocket stays open through it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from tornado import websocket
from tornado.httpclient import HTTPRequest

from ..errors_seen import count_error
from .channels import (
    UNREADABLE,
    Channel,
    ChannelListener,
    ConnectionClosed,
    Message,
    Replies,
    background,
)

if TYPE_CHECKING:
    from jupyter_client.manager import KernelManager
    from jupyter_events import EventLogger

log = logging.getLogger(__name__)

#: jupyter_server's schema of kernel action events (start, restart, interrupt, shutdown)
KERNEL_ACTIONS_SCHEMA = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"


def gateway_kernel(km: KernelManager) -> bool:
    """Whether ``km`` (a kernel's manager) drives a kernel on a gateway."""
    from jupyter_server.gateway.managers import GatewayKernelManager

    return isinstance(km, GatewayKernelManager)


def _encode(msg: Message) -> str | bytes:
    if msg.get("buffers"):
        from jupyter_server.services.kernels.connection.base import serialize_binary_message

        framed: bytes = serialize_binary_message(msg)
        return framed
    return json.dumps(msg, default=json_default)


def _decode(frame: str | bytes) -> Message:
    if isinstance(frame, bytes):
        from jupyter_server.services.kernels.connection.base import deserialize_binary_message

        msg: Message = deserialize_binary_message(frame)
    else:
        msg = json.loads(frame)
    # as ``channels.decode`` reads ZMQ messages (dates stay strings)
    msg["header"] = msg.get("header") or {}
    msg["parent_header"] = msg.get("parent_header") or {}
    return msg


class GatewayConnection(Replies):
    """Client channels to a gateway kernel over its channels websocket."""

    def __init__(self, kernel_id: str, session: Session, listener: ChannelListener) -> None:
        super().__init__(session, listener)
        self.kernel_id = kernel_id
        self._stdin_handler = listener.on_stdin
        self._ws: websocket.WebSocketClientConnection | None = None
        #: resolved with the reason once the kernel behind this connection is gone
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def connect(self, timeout: float) -> None:
        from jupyter_server.gateway.gateway_client import GatewayClient
        from jupyter_server.utils import url_escape, url_path_join

        client = GatewayClient.instance()
        url = url_path_join(
            client.ws_url or "", client.kernels_endpoint, url_escape(self.kernel_id), "channels"
        )
        request = HTTPRequest(url, **client.load_connection_args(connect_timeout=timeout))
        self._ws = await websocket.websocket_connect(request)
        self.tasks.append(background(self._read()))

    def _close_transport(self, reason: str) -> None:
        if self._ws is not None:
            self._ws.close()
        self._end(reason)

    def _end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    def start_send(self, channel: Channel, msg: Message) -> asyncio.Future[Any]:
        if not self.open or self._ws is None:
            raise ConnectionClosed("The kernel is not connected.")
        framed = {**msg, "channel": channel}
        frame = _encode(framed)
        return asyncio.ensure_future(self._ws.write_message(frame, binary=isinstance(frame, bytes)))

    async def drain(self) -> None:
        """Nothing to drain: one socket delivers the kernel's last words in order."""

    async def _read(self) -> None:
        assert self._ws is not None
        while True:
            frame = await self._ws.read_message()
            if frame is None:
                if self.open:
                    self._end("The connection to the kernel gateway was lost.")
                return
            try:
                msg = _decode(frame)
            except UNREADABLE as e:
                log.warning("Dropped an unreadable message from a gateway kernel: %s", e)
                continue
            channel = msg.get("channel")
            try:
                if channel == "iopub":
                    self._on_iopub(msg)
                    self._notice_death(msg)
                elif channel == "shell":
                    self._on_shell(msg)
                elif channel == "stdin":
                    self._stdin_handler(msg)
            except Exception as e:  # a bug of ours: the kernel's next messages still come
                what = f"handling {msg.get('msg_type')} from a gateway kernel"
                count_error("kernel.message", e, what, logger=log)

    def _notice_death(self, msg: Message) -> None:
        if msg.get("msg_type") != "status":
            return
        state = msg.get("content", {}).get("execution_state")
        if state == "restarting":
            self._end("The kernel died unexpectedly; the gateway restarts it.")
        elif state == "dead":
            self._end("The kernel died and the gateway could not restart it.")


class RemoteRestarts:
    """Restarts and shutdowns of one gateway kernel, from jupyter_server's kernel events."""

    def __init__(
        self, event_logger: EventLogger | None, kernel_id: str, on_action: Callable[[str], None]
    ) -> None:
        self._logger = event_logger
        self._kernel_id = kernel_id
        self._on_action = on_action
        self._subscribed = False

    def subscribe(self) -> None:
        if self._logger is not None and not self._subscribed:
            self._logger.add_listener(schema_id=KERNEL_ACTIONS_SCHEMA, listener=self._listener)
            self._subscribed = True

    def unsubscribe(self) -> None:
        if self._subscribed and self._logger is not None:
            self._logger.remove_listener(schema_id=KERNEL_ACTIONS_SCHEMA, listener=self._listener)
            self._subscribed = False

    async def _listener(self, logger: EventLogger, schema_id: str, data: dict[str, Any]) -> None:
        ours = data.get("kernel_id") == self._kernel_id and data.get("status") == "success"
        if ours and data.get("action") in ("restart", "shutdown"):
            self._on_action(data["action"])
