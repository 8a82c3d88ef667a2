"""What the JupyterLab frontend does when a user runs a cell of a collaborative notebook on the
stock stack (``LabRunner``)."""

from __future__ import annotations

import time
from typing import Any

from clients import KernelChannel
from jupyter_ydoc import YNotebook
from pycrdt import Array, Map, Text


class LabRunner:
    """What the JupyterLab frontend does when a user runs a cell of a collaborative notebook
    on the stock stack: the outputs that come over the kernel websocket are written into the
    user's YNotebook, one transaction per message, which the Provider sends to the room.

    As JupyterLab 4 (``CodeCell.execute``, ``OutputAreaModel``, and @jupyter/ydoc's
    ``YCodeCell``): the run clears the cell's outputs and count; a stream message whose name
    is the last output's is appended to that output's ``text`` (a ``Text``:
    ``appendStreamOutput``), any other output is appended as a new ``Map`` (a stream's text as
    a ``Text``); the execute_reply sets the count. Plain text only: no ``\\r``/``\\b`` here.
    """

    def __init__(self, ynb: YNotebook, channel: KernelChannel) -> None:
        self.ynb = ynb
        self.channel = channel

    def _cell(self, index: int) -> Map:
        return self.ynb.ycells[index]

    async def run(self, index: int) -> tuple[dict[str, Any], float]:
        """Run cell ``index``; its execute_reply and the ``perf_counter`` when the kernel was
        idle again (reply and ``status: idle`` received)."""
        cell = self._cell(index)
        with self.ynb.ydoc.transaction():
            cell["outputs"].clear()
            cell["execution_count"] = None
            cell["execution_state"] = "running"
        msg_id = await self.channel.send_execute(str(cell["source"]))
        reply: dict[str, Any] = {}
        async for message in self.channel.replies(msg_id):
            kind = message["msg_type"]
            if kind == "execute_reply":
                reply = message
            elif message.get("channel") == "iopub":
                self._output(cell, kind, message["content"])
        idle = time.perf_counter()
        with self.ynb.ydoc.transaction():
            cell["execution_count"] = reply.get("content", {}).get("execution_count")
            cell["execution_state"] = "idle"
        return reply, idle

    @staticmethod
    def _output(cell: Map, kind: str, content: dict[str, Any]) -> None:
        outputs: Array = cell["outputs"]
        if kind == "stream":
            last = outputs[len(outputs) - 1] if len(outputs) else None
            if (
                last is not None
                and last.get("output_type") == "stream"
                and last.get("name") == content["name"]
            ):
                text: Text = last["text"]
                text += content["text"]
            else:
                outputs.append(
                    Map(
                        {
                            "output_type": "stream",
                            "name": content["name"],
                            "text": Text(content["text"]),
                        }
                    )
                )
        elif kind in ("execute_result", "display_data"):
            output = {
                "output_type": kind,
                "data": content.get("data", {}),
                "metadata": content.get("metadata", {}),
            }
            if kind == "execute_result":
                output["execution_count"] = content.get("execution_count")
            outputs.append(Map(output))
        elif kind == "error":
            outputs.append(Map({"output_type": "error", **content}))
        elif kind == "clear_output":
            outputs.clear()
