"""``CellRun``: one run of one cell, from its execute request to its end.

The runner (``runner.py``) decides what runs when; a ``CellRun`` sends one cell's code to the
kernel and turns the request's messages into the cell's state and outputs (through its
``OutputHandler`` and the runner's ``CellWrites``): ``busy`` when the kernel publishes
``execute_input`` (written with the first output if that comes within ``flush_interval``),
outputs as they come (the messages that arrived together are one change), ``idle`` with its
end once the kernel is done. ``input()``/``getpass()`` show an
``input_request`` output that any client can answer (``answer_input``; a password only through
the REST API, never through the shared document).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..kernels.kernel import DEAD_KERNEL_ENAME, CodeExecutionEmitter, JupyterKernel
from ..outputs.handler import OutputHandler
from .cell_writes import CellWrites

log = logging.getLogger(__name__)

INPUT_REQUEST = "input_request"


class CellRun:
    """One run of ``handler.cell_id`` on ``kernel`` (module docstring)."""

    def __init__(
        self,
        kernel: JupyterKernel,
        handler: OutputHandler,
        writes: CellWrites,
        *,
        interrupt_requested: Callable[[], bool],
        last_of_batch: Callable[[], bool],
    ) -> None:
        self.kernel = kernel
        self.handler = handler
        self.cell_id = handler.cell_id
        self.writes = writes
        #: whether an interrupt was asked for (it may come before the kernel began the cell)
        self._interrupt_requested = interrupt_requested
        #: whether no other cell waits to run after this one (the kernel's idle state is then
        #: said with this run's end)
        self._last_of_batch = last_of_batch
        self._emitter: CodeExecutionEmitter | None = None
        self._input: tuple[int, bool, str] | None = None  # output index, password, prompt

    async def execute(self, code: str, emitter: CodeExecutionEmitter | None = None) -> bool:
        """Run ``code`` (``emitter``: its request, sent already); whether it ended without an
        error. The cell is ``idle`` and its outputs written (and finished) when this
        returns, however it ends."""
        cell_id, handler, writes = self.cell_id, self.handler, self.writes
        kernel = self.kernel
        ok = True
        writes.last_flush = 0.0  # the first output of a run is written at once
        if emitter is None:
            emitter = kernel.execute_code(code)
        self._emitter = emitter
        try:
            async for msg in emitter:
                msg_type = msg.get("msg_type") or msg["header"]["msg_type"]
                if msg_type == "execute_input":
                    # "busy" means the kernel is executing it, not that it was sent
                    handler.handle(msg)
                    writes.started(cell_id, handler)
                    if self._interrupt_requested():  # asked for before the kernel began
                        writes.commit()
                        await kernel.signal("SIGINT")
                elif msg_type == INPUT_REQUEST:
                    self._show_input_request(msg)
                else:
                    if msg_type == "error":
                        ok = False
                        if msg.get("content", {}).get("ename") == DEAD_KERNEL_ENAME:
                            evalue = msg.get("content", {}).get("evalue", "the kernel died")
                            writes.set_settings(backend_state="failed", kernel_error=evalue)
                    handler.handle(msg)
                    if not emitter.pending:
                        writes.flush_soon(cell_id)
                if emitter.pending:
                    continue
                if msg_type == "execute_input":
                    # a quick cell's output follows its start within a millisecond or two,
                    # rarely in the same read: the start waits a little for it (one change)
                    writes.write_start_soon()
                else:
                    # the messages that arrived together are one change: the cell's start,
                    # its outputs and (when the run's end came with them) its end
                    writes.commit()
            reply = emitter.reply or {}
            if reply.get("status") == "error":
                ok = False
        finally:
            self._emitter = None
            self._input = None
            await handler.finish()
            writes.cancel_flush()
            # the kernel's last run of the batch: its idle state is said with the run's end
            writes.flush(cell_id, handler, final=True, kernel_idle=self._last_of_batch())
            writes.commit()  # (the cell is gone: what else the run wrote)
        return ok

    # -- stdin ------------------------------------------------------------------------------

    def _show_input_request(self, msg: dict[str, Any]) -> None:
        content = msg.get("content", {})
        prompt, password = content.get("prompt", ""), bool(content.get("password"))
        # shown even past the output limits: the cell is blocked until someone answers
        index = self.handler.add_visible(
            {"output_type": INPUT_REQUEST, "prompt": prompt, "password": password}
        )
        self._input = (index, password, prompt)
        self.writes.cancel_flush()
        self.writes.flush(self.cell_id, self.handler)

    @property
    def waits_for_input(self) -> bool:
        return self._input is not None

    def maybe_answered(self, record: dict[str, Any]) -> None:
        """The cell's outputs changed while it waits for input: a client may have written
        the answer into the ``input_request`` output (its ``value``)."""
        if self._input is None:
            return
        index, password, _prompt = self._input
        message = (record.get("output") or {}).get(str(index))
        if isinstance(message, dict) and isinstance(message.get("value"), str):
            if password:
                # a password typed into the shared document is in its history for good: it
                # is not used, the prompt waits for POST …/input
                log.warning("ignored a password written into %s; use POST …/input", self.cell_id)
                return
            self.answer_input(message["value"])

    def answer_input(self, value: str) -> bool:
        """Answer the pending ``input()``; returns whether one was pending."""
        if self._input is None or self._emitter is None:
            return False
        index, password, prompt = self._input
        self._input = None
        self._emitter.send_input(value)
        handler = self.handler
        if index < len(handler.messages):
            shown = "" if password else value
            handler.answer(index, f"{prompt}{shown}\n")
            self.writes.flush(self.cell_id, handler)
        return True
