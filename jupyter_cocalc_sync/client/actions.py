"""Notebook actions on the Python client: each one ``POST …/actions``, one commit on the server.

Every method returns once the server has committed the action and this replica has received
it (``LiveNotebook.sync``), so ``nb.get_one(...)`` right after shows the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .errors import ServerError

if TYPE_CHECKING:
    from .client import CocalcSyncClient

CellType = Literal["code", "markdown", "raw"]
T = TypeVar("T")


class NotebookActionsMixin:
    """The actions of ``LiveNotebook`` (see ``actions/notebook.py`` on the server)."""

    if TYPE_CHECKING:
        client: CocalcSyncClient

        def _url(self, suffix: str) -> str: ...

        async def sync(self) -> None: ...

    async def action(self, name: str, /, **params: Any) -> dict[str, Any]:
        """Perform the action ``name`` with ``params``; returns the server's answer
        (``{"version", …}``); ``ServerError`` (400) for bad parameters, nothing changed."""
        body = {"action": name, **params}
        reply = await self.client.request_json("POST", self._url("/actions"), body)
        await self.sync()
        return reply

    async def insert_cell(
        self,
        delta: Literal[1, -1] = 1,
        id: str | None = None,
        cell_type: CellType = "code",
        input: str = "",
    ) -> str:
        """A new cell below (``delta=1``) or above (``-1``) the cell ``id`` (without ``id``:
        at the end or the start); returns its id."""
        reply = await self.action(
            "insert_cell", delta=delta, id=id, cell_type=cell_type, input=input
        )
        return _field(reply, "id", str)

    async def delete_cells(self, ids: list[str]) -> int:
        return _field(await self.action("delete_cells", ids=ids), "version", int)

    async def move_cell(self, id: str, delta: int) -> int:
        """Move the cell ``delta`` places down (up if negative)."""
        return _field(await self.action("move_cell", id=id, delta=delta), "version", int)

    async def merge_cells(self, ids: list[str]) -> str:
        """Merge the cells into the first (inputs joined by newlines, outputs in order)."""
        return _field(await self.action("merge_cells", ids=ids), "id", str)

    async def split_cell(self, id: str, cursor: int) -> str:
        """Split the cell's input at ``cursor`` (in characters); returns the new cell's id."""
        return _field(await self.action("split_cell", id=id, cursor=cursor), "id", str)

    async def set_cell_type(self, id: str, cell_type: CellType) -> int:
        return _field(
            await self.action("set_cell_type", id=id, cell_type=cell_type), "version", int
        )

    async def set_cell_input(self, id: str, input: str) -> int:
        return _field(await self.action("set_cell_input", id=id, input=input), "version", int)

    async def clear_outputs(self, ids: list[str] | None = None) -> int:
        """Clear outputs and execution counts (default: of every cell)."""
        return _field(await self.action("clear_outputs", ids=ids), "version", int)

    async def toggle_tags(self, ids: list[str], tags: list[str]) -> int:
        return _field(await self.action("toggle_tags", ids=ids, tags=tags), "version", int)

    async def set_kernel(self, name: str) -> None:
        await self.action("set_kernel", name=name)

    async def run_cells(self, ids: list[str]) -> list[str]:
        """Queue the cells on the server; returns the ids queued (code cells)."""
        return _ids(await self.action("run_cells", ids=ids), "queued")

    async def run_all_above(self, id: str) -> list[str]:
        """Queue every cell above ``id``."""
        return _ids(await self.action("run_all_above", id=id), "queued")

    async def run_all_below(self, id: str) -> list[str]:
        """Queue ``id`` and every cell below it."""
        return _ids(await self.action("run_all_below", id=id), "queued")


def _field(reply: dict[str, Any], name: str, kind: type[T]) -> T:
    """``reply[name]``, checked to be a ``kind``."""
    value = reply.get(name)
    if not isinstance(value, kind):
        raise ServerError(502, f"the server's answer has no {kind.__name__} {name!r}: {reply}")
    return value


def _ids(reply: dict[str, Any], name: str) -> list[str]:
    """``reply[name]``, checked to be a list of cell ids."""
    ids = _field(reply, name, list)
    if not all(isinstance(i, str) for i in ids):
        raise ServerError(502, f"the server's answer has no list of ids {name!r}: {reply}")
    return ids
