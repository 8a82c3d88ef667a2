"""A JupyterLab tab's kernel websocket to a gateway kernel, with binary frames kept binary.

With ``--gateway-url``, jupyter_server relays a tab's ``/api/kernels/<id>/channels`` to the
gateway's (``GatewayWebSocketConnection``). Messages with buffers (a widget's image bytes, a
file upload) travel as binary frames, and that relay breaks them both ways: it writes a tab's
binary frame to the gateway as a text frame (not UTF-8: the gateway drops the connection, and
the change is lost), and it decodes the gateway's binary frames as UTF-8 (the read loop dies
on the first widget with bytes, and the tab hears nothing from its kernel again) — reported
upstream as ipywidgets#3798. This class is that relay with each frame passed on as the kind
it arrived as; the protocol is the same on both sides (the legacy one, which the stock class
already insists on), so nothing needs re-encoding.
"""

from __future__ import annotations

import asyncio
import random

from jupyter_server.gateway.connections import GatewayWebSocketConnection
from jupyter_server.gateway.gateway_client import GatewayClient
from tornado import websocket
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from ..errors_seen import count_error


class BinaryGatewayWebSocketConnection(GatewayWebSocketConnection):
    """``GatewayWebSocketConnection`` that relays binary frames as binary frames (and sends
    small frames to the tab at once, as the local kernel websocket does)."""

    async def connect(self) -> None:
        # Nagle's algorithm would hold each small reply back for a delayed ACK (~40 ms)
        self.websocket_handler.set_nodelay(True)
        await super().connect()  # type: ignore[no-untyped-call]  # (not annotated upstream)

    async def _read_messages(self) -> None:
        """Relay the gateway's frames to the tab until the connection ends, then reconnect
        (with the gateway client's retry settings) unless the tab left.

        The whole loop, not a wrapper: the stock one decodes a frame right after reading it,
        and its reconnect cannot be reused after ours (a closed tornado connection answers
        ``None`` to one read only; the next would wait forever)."""
        ws = self.ws
        while ws is not None and not self.disconnected:
            try:
                message = await ws.read_message()
            except (WebSocketClosedError, StreamClosedError) as e:  # (a close answers None)
                self.log.warning("The gateway websocket broke: %s", e)
                message = None
            except Exception as e:  # a bug: treated as a lost connection (reconnects)
                count_error("gateway.read", e, "reading from a gateway websocket", logger=self.log)
                message = None
            if message is None:
                if not self.disconnected:
                    self.log.warning("Lost connection to Gateway: %s", self.kernel_id)
                break
            self.handle_outgoing_message(message)
        client = GatewayClient.instance()
        if self.disconnected or self.retry >= client.gateway_retry_max:
            return
        backoff = client.gateway_retry_interval * (2**self.retry)
        delay = min(backoff, client.gateway_retry_interval_max) + random.uniform(0.1, 1)
        self.retry += 1
        self.log.info(
            "Attempting to re-establish the connection to Gateway in %.2f secs (%s/%s): %s",
            delay,
            self.retry,
            client.gateway_retry_max,
            self.kernel_id,
        )
        await asyncio.sleep(delay)
        await self.connect()

    def handle_outgoing_message(self, incoming_msg: str | bytes, *args: object) -> None:
        """Send a frame from the gateway to the tab, as the kind it came as."""
        try:
            self.websocket_handler.write_message(
                incoming_msg, binary=isinstance(incoming_msg, bytes)
            )
        except websocket.WebSocketClosedError:
            self.log.debug("The tab closed its kernel websocket: a message was dropped")

    def _write_message(self, message: str | bytes) -> None:
        """Send a frame from the tab to the gateway, as the kind it came as."""
        if self.disconnected or self.ws is None:
            return
        try:
            self.ws.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            self.log.warning("The gateway websocket closed: a message from the tab was dropped")
