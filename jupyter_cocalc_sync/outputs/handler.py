"""``OutputHandler``: one cell run's kernel messages → the cell's output map.

* Consecutive stream messages of one name are one output, with ``\\r``/``\\b`` applied
  (``stream.py``).
* Per cell at most ``max_output_length`` characters (the compact JSON of the output map) and
  ``max_output_messages`` messages are visible; past that one ``{"more_output": true}`` marker is
  added and everything else goes to the overflow store, in order (``overflow.py``). A stream
  that crosses the limit is split where the limit falls, so visible + overflow is the whole text.
  Errors and execute results always stay visible (a traceback is never truncated away).
* ``clear_output`` clears at once, or, with ``wait=True``, when the next output arrives; it also
  ends "more output" mode and drops the overflow of the run.
* ``display_id``: a display registers where it is shown; ``update_display_data`` updates every
  output with that id, in this cell or any other (``DisplayIndex``).
* Binary payloads above the blob threshold are replaced by blob references (``blobs.py``).

The runner reads the changes with ``take_patch`` (as a partial ``output`` map for
``SyncDB.set``) at the pace it chooses, so a flood is a handful of document writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .blobs import BlobStore
from .overflow import OverflowWriter
from .stream import StreamText, escaped_length

MORE_OUTPUT = {"more_output": True}
OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")
ALWAYS_VISIBLE = ("error", "execute_result")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def is_marker(message: Any) -> bool:
    return isinstance(message, dict) and message.get("more_output") is True


@dataclass
class OutputLimits:
    max_length: int = 250_000
    max_messages: int = 500


@dataclass
class DisplayIndex:
    """Where each ``display_id`` is shown, across the cells of one notebook."""

    #: display id -> [(cell id, output index)]
    places: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: writes an update into a cell that is not the running one
    write_other: Callable[[str, int, dict[str, Any]], None] | None = None

    def add(self, display_id: str, cell_id: str, index: int) -> None:
        places = self.places.setdefault(display_id, [])
        if (cell_id, index) not in places:
            places.append((cell_id, index))

    def forget_cell(self, cell_id: str) -> None:
        for display_id in list(self.places):
            kept = [p for p in self.places[display_id] if p[0] != cell_id]
            if kept:
                self.places[display_id] = kept
            else:
                del self.places[display_id]


class OutputHandler:
    """Builds one cell's outputs from the messages of one run (module docstring)."""

    def __init__(
        self,
        cell_id: str,
        *,
        limits: OutputLimits | None = None,
        blobs: BlobStore | None = None,
        overflow: Callable[[], OverflowWriter] | None = None,
        displays: DisplayIndex | None = None,
        doc_id: str | None = None,
    ) -> None:
        self.cell_id = cell_id
        self.limits = limits or OutputLimits()
        self.blobs = blobs
        self._new_overflow = overflow
        self.displays = displays if displays is not None else DisplayIndex()
        self.doc_id = doc_id
        self.messages: list[dict[str, Any]] = []
        self.exec_count: int | None = None
        self.overflow: OverflowWriter | None = None
        self.overflow_cleared = False  # a clear_output dropped earlier overflow of this run
        self._sizes: list[int] = []
        self._total = 2  # "{}"
        self._streams: dict[int, StreamText] = {}
        self._spilling: StreamText | None = None  # stream text headed for the overflow
        self._spilling_name: str | None = None
        self._marker: int | None = None
        self._clear_pending = False
        self._dirty: set[int] = set()
        self._flushed = 0  # how many messages the document holds after the last patch
        self._replace_all = True  # the first patch replaces whatever output the cell had

    # -- messages ---------------------------------------------------------------------------

    def handle(self, msg: dict[str, Any]) -> None:
        """Take one iopub message (a jupyter_client message dict)."""
        msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
        content = msg.get("content") or {}
        if msg_type == "execute_input":
            self.exec_count = content.get("execution_count")
        elif msg_type == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self.clear()
        elif msg_type == "update_display_data":
            self._update_display(content)
        elif msg_type in OUTPUT_TYPES:
            if self._clear_pending:
                self.clear()
            if msg_type == "execute_result" and content.get("execution_count") is not None:
                self.exec_count = content["execution_count"]
            output = self._output(msg_type, content)
            display_id = (content.get("transient") or {}).get("display_id")
            index = self.add(output)
            if display_id and index is not None:
                self.displays.add(display_id, self.cell_id, index)

    def _output(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        if msg_type == "stream":
            return {
                "output_type": "stream",
                "name": content.get("name", "stdout"),
                "text": content.get("text", ""),
            }
        if msg_type == "error":
            return {
                "output_type": "error",
                "ename": content.get("ename", ""),
                "evalue": content.get("evalue", ""),
                "traceback": list(content.get("traceback") or []),
            }
        output: dict[str, Any] = {
            "output_type": msg_type,
            "data": content.get("data") or {},
            "metadata": content.get("metadata") or {},
        }
        if msg_type == "execute_result":
            output["execution_count"] = content.get("execution_count")
        if self.blobs is not None:
            output = self.blobs.extract(output, self.doc_id)
        return output

    def add(self, output: dict[str, Any]) -> int | None:
        """Append one nbformat output; returns its visible index (None if it overflowed)."""
        kind = output.get("output_type")
        if kind == "stream":
            return self._add_stream(output)
        self._end_spill()
        if self._marker is not None and kind not in ALWAYS_VISIBLE:
            self._spill(output)
            return None
        if kind not in ALWAYS_VISIBLE and not self._fits(output, new=True):
            self._start_overflow()
            self._spill(output)
            return None
        return self._append(output)

    def add_visible(self, output: dict[str, Any]) -> int:
        """Append ``output`` where every client sees it, past the limits if need be."""
        self._end_spill()
        return self._append(output)

    def replace(self, index: int, output: dict[str, Any]) -> None:
        """Put ``output`` in place of the visible output at ``index``."""
        self._streams.pop(index, None)
        self._set(index, output)

    def answer(self, index: int, text: str) -> None:
        """The input request at ``index`` was answered: it becomes ``text`` on stdout. As the
        last output (the kernel waited on it) it joins the stdout stream before it, and what
        the cell prints next joins it: one stream, as JupyterLab shows a prompt and its answer
        (JupyterLab merges neighbouring streams of one name in its own copy, and would write
        the merged text back into the document)."""
        output = {"output_type": "stream", "name": "stdout", "text": text}
        if index != len(self.messages) - 1 or self._marker is not None:
            self.replace(index, output)
            return
        self.messages.pop()
        self._total -= self._sizes.pop() + (1 if index else 0)
        self._streams.pop(index, None)
        self._dirty.discard(index)
        self._add_stream(output)

    def _add_stream(self, output: dict[str, Any]) -> int | None:
        name, text = output["name"], output["text"]
        if self._marker is not None:
            if self._spilling is None or self._spilling_name != name:
                self._end_spill()
                self._spilling, self._spilling_name = StreamText(), name
            self._spilling.feed(text)
            self._release_spilled_lines()
            return None
        last = len(self.messages) - 1
        stream = self._streams.get(last)
        if stream is not None and self.messages[last].get("name") == name:
            stream.feed(text)
            message = {**self.messages[last], "text": stream.text}
            # the size from the stream's running JSON length: the text is not escaped again
            self._set(last, message, size=self._stream_size(last, message, stream))
            if self._total > self.limits.max_length:
                self._split_stream(last)
            return last
        rendered = StreamText(text)
        candidate = {"output_type": "stream", "name": name, "text": rendered.text}
        if not self._fits(candidate, new=True):
            if len(self.messages) >= self.limits.max_messages:
                self._start_overflow()
                self._spilling, self._spilling_name = rendered, name
                self._release_spilled_lines()
                return None
            index = self._append({**candidate, "text": ""})
            self._streams[index] = rendered
            self._set(index, candidate)
            self._split_stream(index)
            return index
        index = self._append(candidate)
        self._streams[index] = rendered
        return index

    def _split_stream(self, index: int) -> None:
        """The stream at ``index`` grew past the limit: keep what fits, spill the rest."""
        message = self.messages[index]
        text = message["text"]
        key = len(str(index)) + 3
        budget = self.limits.max_length - (self._total - self._sizes[index]) - key
        keep = _longest_prefix(message, text, budget)
        self._set(index, {**message, "text": text[:keep]})
        stream = self._streams.pop(index)
        self._start_overflow()
        rest = StreamText()
        rest.set_text(text[keep:])
        rest.col = stream.col
        self._spilling, self._spilling_name = rest, message["name"]
        self._release_spilled_lines()

    def _release_spilled_lines(self) -> None:
        """Send finished lines of the spilling stream to the overflow (the last may change)."""
        stream = self._spilling
        assert stream is not None
        end = stream.text.rfind("\n") + 1
        if end:
            if self.overflow is not None:
                self.overflow.add(
                    {
                        "output_type": "stream",
                        "name": self._spilling_name,
                        "text": stream.text[:end],
                    }
                )
            stream.set_text(stream.text[end:])

    def _end_spill(self) -> None:
        stream, self._spilling = self._spilling, None
        if stream is not None and stream.text and self.overflow is not None:
            self.overflow.add(
                {"output_type": "stream", "name": self._spilling_name, "text": stream.text}
            )

    def _spill(self, output: dict[str, Any]) -> None:
        if self.overflow is not None:
            self.overflow.add(output)

    def _start_overflow(self) -> None:
        if self._marker is not None:
            return
        if self.overflow is None and self._new_overflow is not None:
            self.overflow = self._new_overflow()
        self._marker = self._append(dict(MORE_OUTPUT))

    # -- bookkeeping ------------------------------------------------------------------------

    @staticmethod
    def _size(index: int, message: dict[str, Any]) -> int:
        return len(str(index)) + 3 + len(dumps(message))  # "i": + value

    @staticmethod
    def _stream_size(index: int, message: dict[str, Any], stream: StreamText) -> int:
        # '"text":' + the escaped text, in place of the empty string in the shell's JSON
        shell = len(dumps({**message, "text": ""}))
        return len(str(index)) + 3 + shell - 2 + stream.json_length

    def _fits(self, output: dict[str, Any], *, new: bool) -> bool:
        index = len(self.messages)
        if new and index + 1 > self.limits.max_messages:
            return False
        extra = self._size(index, output) + (1 if self.messages else 0)
        return self._total + extra <= self.limits.max_length

    def _append(self, output: dict[str, Any]) -> int:
        index = len(self.messages)
        self.messages.append(output)
        size = self._size(index, output)
        self._sizes.append(size)
        self._total += size + (1 if index else 0)
        self._dirty.add(index)
        return index

    def _set(self, index: int, output: dict[str, Any], size: int | None = None) -> None:
        size = self._size(index, output) if size is None else size
        self._total += size - self._sizes[index]
        self._sizes[index] = size
        self.messages[index] = output
        self._dirty.add(index)

    def clear(self) -> None:
        """``clear_output``: nothing visible, no "more output" mode, no overflow of this run."""
        self._clear_pending = False
        self.messages, self._sizes, self._streams = [], [], {}
        self._total = 2
        self._marker = None
        self._spilling = None
        if self.overflow is not None:
            self.overflow = None
            self.overflow_cleared = True
        self.displays.forget_cell(self.cell_id)
        self._dirty.clear()

    def _update_display(self, content: dict[str, Any]) -> None:
        display_id = (content.get("transient") or {}).get("display_id")
        if not display_id:
            return
        update = self._output("display_data", content)
        for cell_id, index in list(self.displays.places.get(display_id, [])):
            if cell_id == self.cell_id:
                if index < len(self.messages):
                    current = self.messages[index]
                    self._set(
                        index, {**current, "data": update["data"], "metadata": update["metadata"]}
                    )
            elif self.displays.write_other is not None:
                self.displays.write_other(cell_id, index, update)

    # -- reading ----------------------------------------------------------------------------

    @property
    def length(self) -> int:
        """Length of the compact JSON of the visible output map."""
        return self._total

    @property
    def overflowing(self) -> bool:
        return self._marker is not None

    def has_changes(self) -> bool:
        return bool(self._dirty) or self._replace_all or len(self.messages) != self._flushed

    def take_patch(self) -> dict[str, Any] | None:
        """The ``output`` field to ``set`` for the changes since the last call (or None).

        The first patch of a run is ``{}``-based (it replaces the cell's old output); after a
        ``clear_output`` the patch deletes the indexes that are gone.
        """
        if not self.has_changes():
            return None
        patch: dict[str, Any] = {str(i): self.messages[i] for i in sorted(self._dirty)}
        for index in range(len(self.messages), self._flushed):
            patch[str(index)] = None
        self._dirty.clear()
        self._flushed = len(self.messages)
        self._replace_all = False
        return patch

    async def finish(self) -> None:
        """The run ended: flush the spilling stream and the overflow writer."""
        self._end_spill()
        if self.overflow is not None:
            await self.overflow.finish()


def _longest_prefix(message: dict[str, Any], text: str, budget: int) -> int:
    """The longest prefix of ``text`` whose message still fits in ``budget`` characters."""
    room = budget - len(dumps({**message, "text": ""}))  # for the escaped text
    end = _fitting_prefix(text, room)
    # end the visible part at a line break when one is near, so lines are not cut in two
    cut = text.rfind("\n", 0, end)
    return cut + 1 if cut >= 0 and end - cut < 4096 else end


def _fitting_prefix(text: str, room: int) -> int:
    """The length of the longest prefix of ``text`` that takes at most ``room`` escaped.

    Each character takes one or more characters escaped, and the escaped length of a text is
    the sum of its pieces': from a guess in proportion, the prefix is found with a few escapes
    of short pieces, not one escape of a long prefix per step of a bisection (the output
    handler runs on the event loop, and a flood crosses the limit with 250 kB)."""
    if room <= 0:
        return 0
    whole = escaped_length(text)
    if whole <= room:
        return len(text)
    end = room * len(text) // whole
    used = escaped_length(text[:end])
    while used > room:  # dropping ``used - room`` characters frees at least that much
        end = max(0, end - (used - room))
        used = escaped_length(text[:end])
    while used < room:
        spare = room - used
        step = escaped_length(text[end : end + spare])
        if step > spare:  # not all of them: the longest part of them that fits
            return end + _longest_fitting(text, end, spare)
        end, used = end + spare, used + step
    return end


def _longest_fitting(text: str, start: int, room: int) -> int:
    """How many characters of ``text`` from ``start`` take at most ``room`` escaped
    (fewer than ``room``, and more than ``room`` take more)."""
    lo, hi = 0, room
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if escaped_length(text[start : start + mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo
