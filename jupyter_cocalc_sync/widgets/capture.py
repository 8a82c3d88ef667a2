"""``OutputCapture``: Output widgets capture on the server.

In the kernel, ``with out:`` sets the Output widget's ``msg_id`` to the request being run; a
frontend then routes that request's outputs into the widget instead of the cell. For what the
server caused (a cell it runs, a change it sent), the server is that frontend: the captured
messages go into the widget's ``outputs`` (table and kernel, whose echo shows them in every
JupyterLab tab) and never into the cell's output. Requests of other clients are theirs to
capture (a JupyterLab tab does it for its own, through its kernel future's message hook).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import nbformat

from ..kernels.channels import Message

OUTPUT_MODEL = "OutputModel"
CAPTURED_TYPES = frozenset({"stream", "display_data", "execute_result", "error", "clear_output"})


class CaptureSink(Protocol):
    """Where captured outputs are written (the bridge: table and kernel)."""

    def record(self, model_id: str, changes: dict[str, Any]) -> None: ...


class OutputCapture:
    """The Output widgets of one kernel and what they are capturing (module docstring)."""

    def __init__(self, sink: CaptureSink) -> None:
        self.sink = sink
        #: request msg_id -> the Output widget capturing its outputs
        self._capturing: dict[str, str] = {}
        #: Output widget -> its outputs, as the server last wrote them
        self._outputs: dict[str, list[dict[str, Any]]] = {}
        self._clear_pending: set[str] = set()
        self._dirty: set[str] = set()
        self._flush_scheduled = False

    def reset(self) -> None:
        self._capturing.clear()
        self._outputs.clear()
        self._clear_pending.clear()
        self._dirty.clear()

    def forget(self, model_id: str) -> None:
        self._capturing = {m: w for m, w in self._capturing.items() if w != model_id}
        self._outputs.pop(model_id, None)
        self._clear_pending.discard(model_id)

    def watch(self, model_id: str, state: dict[str, Any]) -> None:
        """A model's state changed: follow what an Output widget captures."""
        if state.get("_model_name") != OUTPUT_MODEL:
            return
        self._capturing = {m: w for m, w in self._capturing.items() if w != model_id}
        msg_id = state.get("msg_id")
        if isinstance(msg_id, str) and msg_id:
            self._capturing[msg_id] = model_id
        if model_id not in self._dirty:
            outputs = state.get("outputs")
            self._outputs[model_id] = list(outputs) if isinstance(outputs, list) else []

    @property
    def capturing(self) -> bool:
        """Whether any Output widget captures now (the common case, no: one check per output)."""
        return bool(self._capturing)

    def take(self, msg: Message, caused_by_us: bool) -> bool:
        """Capture ``msg`` if an Output widget captures its request; True if it did."""
        if not caused_by_us or msg["msg_type"] not in CAPTURED_TYPES:
            return False
        model_id = self._capturing.get(msg["parent_header"].get("msg_id", ""))
        if model_id is None:
            return False
        outputs = self._outputs.setdefault(model_id, [])
        if msg["msg_type"] == "clear_output":
            if msg["content"].get("wait"):
                self._clear_pending.add(model_id)
            else:
                outputs.clear()
        else:
            if model_id in self._clear_pending:
                self._clear_pending.discard(model_id)
                outputs.clear()
            _append(outputs, _output_of(msg))
        self._dirty.add(model_id)
        if not self._flush_scheduled:
            # a burst of prints is one write and one message to the kernel
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        for model_id in dirty:
            if model_id in self._outputs:
                self.sink.record(model_id, {"outputs": list(self._outputs[model_id])})


def _output_of(msg: Message) -> dict[str, Any]:
    output = dict(nbformat.v4.output_from_msg(msg))
    output.pop("transient", None)
    return output


def _append(outputs: list[dict[str, Any]], output: dict[str, Any]) -> None:
    """Consecutive text of one stream is one output, as an output area shows it."""
    last = outputs[-1] if outputs else None
    if (
        output["output_type"] == "stream"
        and last is not None
        and last.get("output_type") == "stream"
        and last.get("name") == output.get("name")
    ):
        outputs[-1] = {**last, "text": last.get("text", "") + output.get("text", "")}
    else:
        outputs.append(output)
