"""What the JupyterLab frontend does when a user runs a cell of a collaborative notebook on the
stock stack (``LabRunner``)."""

from __future__ import annotations

import re
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
    is the last output's is combined with that output's ``text`` (a ``Text``): carriage returns
    overwrite the line they end (``remove_overwritten``), and the difference is written as
    a removal of the changed tail (``removeStreamOutput``) and an insertion of the new one
    (``appendStreamOutput``), so plain appends are appends; any other output is appended as a
    new ``Map`` (a stream's text as a ``Text``); the execute_reply sets the count. Backspaces
    are not interpreted.
    """

    def __init__(self, ynb: YNotebook, channel: KernelChannel) -> None:
        self.ynb = ynb
        self.channel = channel
        #: the last output's text if it is a stream (JupyterLab's ``_lastStream``)
        self._last_stream = ""

    def _cell(self, index: int) -> Map:
        return self.ynb.ycells[index]

    async def run(self, index: int) -> tuple[dict[str, Any], float]:
        """Run cell ``index``; its execute_reply and the ``perf_counter`` when the kernel was
        idle again (reply and ``status: idle`` received)."""
        cell = self._cell(index)
        self._last_stream = ""
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
                with self.ynb.ydoc.transaction():  # one update per message
                    self._output(cell, kind, message["content"])
        idle = time.perf_counter()
        with self.ynb.ydoc.transaction():
            cell["execution_count"] = reply.get("content", {}).get("execution_count")
            cell["execution_state"] = "idle"
        return reply, idle

    def _output(self, cell: Map, kind: str, content: dict[str, Any]) -> None:
        outputs: Array = cell["outputs"]
        if kind != "stream":
            self._last_stream = ""
        if kind == "stream":
            last = outputs[len(outputs) - 1] if len(outputs) else None
            if (
                last is not None
                and last.get("output_type") == "stream"
                and last.get("name") == content["name"]
            ):
                self._last_stream = _combine(last["text"], self._last_stream, content["text"])
            else:
                self._last_stream = remove_overwritten(content["text"])
                outputs.append(
                    Map(
                        {
                            "output_type": "stream",
                            "name": content["name"],
                            "text": Text(self._last_stream),
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


def remove_overwritten(text: str) -> str:
    """``text`` as a terminal shows it: within a line, what follows a carriage return
    overwrites the line from its start (a ``\\r`` at the very end is kept, for what comes
    next); ``\\r\\n`` is a newline."""
    lines = re.sub(r"\r+\n", "\n", text).split("\n")
    for i, line in enumerate(lines):
        if "\r" not in line.rstrip("\r"):
            continue
        shown = ""
        for part in re.split(r"\r+", line.rstrip("\r")):
            shown = part + shown[len(part) :]
        lines[i] = shown + ("\r" if line.endswith("\r") else "")
    return "\n".join(lines)


def _combine(text: Text, current: str, chunk: str) -> str:
    """Combine ``chunk`` into the stream output whose ``text`` holds ``current``; the new text.
    Only the last line of ``current`` can change, so only it is compared."""
    start = current.rfind("\n") + 1
    tail = current[start:]
    new_tail = remove_overwritten(tail + chunk)
    common = 0
    for a, b in zip(tail, new_tail, strict=False):
        if a != b:
            break
        common += 1
    if common < len(tail):
        del text[start + common : len(current)]
    if common < len(new_tail):
        text.insert(start + common, new_tail[common:])
    return current[:start] + new_tail
