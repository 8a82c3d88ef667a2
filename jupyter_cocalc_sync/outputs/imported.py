"""``FileOutputImporter``: outputs read from a file get what kernel outputs get.

A notebook imported from disk, or merged after another tool changed it, can hold outputs of any
size (a saved flood re-inlines its overflow). Its outputs go through the same blob extraction
and, past the limits (the notebook's ``max_output_length`` / ``max_output_messages`` or the
server's), the same ``OutputHandler`` as a run: a visible part, the ``{"more_output": true}``
marker, and the rest in the overflow store. Outputs within the limits are kept exactly as they
are (streams are not re-joined), so a file round-trips unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import anyio
import orjson

from .blobs import BlobStore
from .handler import OutputHandler, OutputLimits, dumps
from .overflow import MoreOutputStore

#: outputs with at most this much text are measured on the event loop (well under 1 ms)
MEASURED_ON_THE_LOOP = 64 * 1024
#: the most characters of JSON a character of a string becomes in ``dumps`` (a control
#: character as ``\u00XX``; it leaves any other but ``"`` and ``\`` as it is)
MAX_ESCAPED = 6


def _json_length(value: dict[str, Any], limit: int) -> int:
    """The characters of ``value``'s compact JSON (``dumps``), measured exactly only past
    ``limit``: orjson's UTF-8 bytes (it escapes what ``json`` escapes, the same way) are at
    least as many as ``json``'s characters and ten times faster to get, so a length within the
    limit by that count is within it."""
    try:
        length = len(orjson.dumps(value))
    except TypeError:  # what orjson does not take (integers past 64 bits): json's count
        return len(dumps(value))
    return length if length <= limit else len(dumps(value))


def _text_size(outputs: list[dict[str, Any]]) -> float:
    """The characters of the outputs' texts and MIME bundles' strings, about the size of their
    JSON; infinite when an output holds anything else that may be big (a JSON bundle, a
    traceback), which is then measured off the loop."""
    size = 0
    for output in outputs:
        text, data = output.get("text"), output.get("data")
        if isinstance(text, str):
            size += len(text)
        elif isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
            size += sum(len(v) for v in data.values())
        else:
            return math.inf
    return size


def _without_texts(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The visible map of ``outputs`` with the strings ``_text_size`` counts made empty:
    its JSON and ``MAX_ESCAPED`` characters per character of those strings bound theirs."""
    shapes: dict[str, Any] = {}
    for i, output in enumerate(outputs):
        text, data = output.get("text"), output.get("data")
        shape = dict(output)
        if isinstance(text, str):
            shape["text"] = ""
        elif isinstance(data, dict):
            shape["data"] = dict.fromkeys(data, "")
        shapes[str(i)] = shape
    return shapes


def _within_however_escaped(outputs: list[dict[str, Any]], text_size: float, limit: int) -> bool:
    """Whether the visible map of ``outputs`` is within ``limit`` even with every character
    of their texts (``text_size`` of them) escaped to ``MAX_ESCAPED`` characters."""
    most = text_size * MAX_ESCAPED
    return most < limit and most + _json_length(_without_texts(outputs), limit) <= limit


class FileOutputImporter:
    """The ``OutputImporter`` of notebook documents (``documents/notebook_file.py``)."""

    def __init__(
        self, limits: OutputLimits, blobs: BlobStore | None, overflow: MoreOutputStore | None
    ) -> None:
        self.limits = limits
        self.blobs = blobs
        self.overflow = overflow

    def limits_for(self, settings: Mapping[str, Any]) -> OutputLimits:
        return OutputLimits(
            max_length=int(settings.get("max_output_length") or self.limits.max_length),
            max_messages=int(settings.get("max_output_messages") or self.limits.max_messages),
        )

    async def import_outputs(
        self,
        doc_id: str,
        cell_id: str,
        outputs: list[dict[str, Any]],
        settings: Mapping[str, Any],
    ) -> dict[str, Any]:
        if self.blobs is not None:
            outputs = [self.blobs.extract(o, doc_id) for o in outputs]
        limits = self.limits_for(settings)
        visible = {str(i): o for i, o in enumerate(outputs)}
        if len(outputs) <= limits.max_messages:
            text_size = _text_size(outputs)
            if _within_however_escaped(outputs, text_size, limits.max_length):
                # not measured: a big notebook's many mid-sized outputs were serialized once
                # more only for this
                return visible
            if text_size <= MEASURED_ON_THE_LOOP:
                # (a thread hop per cell would cost more)
                length = _json_length(visible, limits.max_length)
            else:  # measuring megabytes of output is CPU work: not on the event loop
                length = await anyio.to_thread.run_sync(
                    lambda: _json_length(visible, limits.max_length)
                )
            if length <= limits.max_length:
                return visible
        overflow = self.overflow
        handler = OutputHandler(
            cell_id,
            limits=limits,
            overflow=(lambda: overflow.writer(doc_id, cell_id)) if overflow is not None else None,
            doc_id=doc_id,
        )
        for output in outputs:
            handler.add(output)
        patch = handler.take_patch() or {}
        await handler.finish()
        return {k: v for k, v in patch.items() if v is not None}
