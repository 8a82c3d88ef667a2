"""``LiveWidgets``: a notebook's widget table, live (``nb.widgets``).

```python
slider = nb.widgets.find(model_name="IntSliderModel")[0]
print(nb.widgets.state(slider)["value"])
nb.widgets.set_value(slider, {"value": 7})  # reaches the kernel's widget
await nb.widgets.wait_for(lambda w: w.state(slider)["value"] == 9)
```
"""

from __future__ import annotations

from typing import Any

import httpx

from ..widgets.table import WidgetTable, widget_syncdb
from .replica import RoomReplica


class LiveWidgets(RoomReplica):
    """A replica of one notebook's widget table (the models its kernel has)."""

    def __init__(self, http: httpx.AsyncClient, room_url: str) -> None:
        super().__init__(http, room_url, widget_syncdb())
        self.table = WidgetTable(self.db)

    def models(self) -> list[str]:
        """The ids of the models in the table."""
        return [m for m in self.table.model_ids() if self.table.has(m)]

    def find(self, **identity: str) -> list[str]:
        """The models whose ``model_name`` / ``model_module`` … are the given ones."""
        return [
            model_id
            for model_id in self.models()
            if all(self.table.identity(model_id).get(k) == v for k, v in identity.items())
        ]

    def state(self, model_id: str) -> dict[str, Any]:
        """The model's current state (without its binary buffers: see ``buffers``)."""
        if not self.table.has(model_id):
            raise KeyError(f"no widget model {model_id!r}")
        return self.table.state(model_id)

    def buffers(self, model_id: str) -> dict[str, str]:
        """``{json(path): sha1}``: the binary parts of the state, in the blob store
        (``GET /api/cocalc-sync/blobs/<sha1>``)."""
        return self.table.data(model_id, "buffers")

    async def buffer(self, sha1: str) -> bytes:
        """The bytes of a buffer (a hash from ``buffers``)."""
        response = await self.http.get(f"/api/cocalc-sync/blobs/{sha1}")
        response.raise_for_status()
        return response.content

    def set_value(self, model_id: str, changes: dict[str, Any]) -> None:
        """Change the model (``{"value": 7}``): sent to the kernel's widget, and to everyone."""
        if not self.table.has(model_id):
            raise KeyError(f"no widget model {model_id!r}")
        self.set({"model_id": model_id, "type": "value", "data": changes})
        self.commit()
