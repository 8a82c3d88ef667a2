"""The saved widget state: ``metadata.widgets["application/vnd.jupyter.widget-state+json"]``.

The standard schema (what JupyterLab's "Save Widget State" writes, what nbconvert's HTML embeds
and what a kernel-less JupyterLab shows): ``{"version_major": 2, "version_minor": 0, "state":
{model_id: {"model_name", "model_module", "model_module_version", "state", "buffers"}}}`` with
buffers inlined as base64. Only models that an output shows, or that such a model references
(``"IPY_MODEL_<id>"``, e.g. a box's children), are saved: the others are unreachable.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, Protocol

from ..sync.table import Record
from .table import WidgetTable

WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
REFERENCE_PREFIX = "IPY_MODEL_"


class BlobReader(Protocol):
    async def get(self, sha1: str) -> tuple[str, bytes] | None: ...


def shown_models(records: Iterable[Record]) -> set[str]:
    """The model ids that cells' outputs display."""
    shown: set[str] = set()
    for record in records:
        for output in (record.get("output") or {}).values():
            view = ((output or {}).get("data") or {}).get(WIDGET_VIEW_MIME)
            if isinstance(view, dict) and isinstance(view.get("model_id"), str):
                shown.add(view["model_id"])
    return shown


def reachable(table: WidgetTable, roots: Iterable[str]) -> list[str]:
    """``roots`` and every model they reference, transitively (in the table only)."""
    seen: list[str] = []
    stack = [r for r in roots if table.has(r)]
    while stack:
        model_id = stack.pop()
        if model_id in seen:
            continue
        seen.append(model_id)
        for ref in _references(table.state(model_id)):
            if ref not in seen and table.has(ref):
                stack.append(ref)
    return seen


def _references(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if value.startswith(REFERENCE_PREFIX):
            yield value[len(REFERENCE_PREFIX) :]
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


async def saved_state(
    table: WidgetTable, blobs: BlobReader, records: Iterable[Record]
) -> dict[str, Any] | None:
    """The widget-state metadata for the models the notebook shows (None: no widgets)."""
    models = reachable(table, shown_models(records))
    if not models:
        return None
    state: dict[str, Any] = {}
    for model_id in sorted(models):
        buffers = []
        for encoded, sha1 in sorted(table.data(model_id, "buffers").items()):
            blob = await blobs.get(sha1)
            if blob is None:
                continue
            buffers.append(
                {
                    "path": json.loads(encoded),
                    "encoding": "base64",
                    "data": base64.b64encode(blob[1]).decode("ascii"),
                }
            )
        entry: dict[str, Any] = {**table.identity(model_id), "state": table.state(model_id)}
        if buffers:
            entry["buffers"] = buffers
        state[model_id] = entry
    return {"version_major": 2, "version_minor": 0, "state": state}
