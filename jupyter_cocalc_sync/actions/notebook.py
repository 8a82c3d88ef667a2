"""``NotebookActions``: CoCalc's notebook actions on the live document, each one commit.

Every action checks all of its parameters against the table before writing anything (a bad
one raises ``InvalidActionError`` and changes nothing), then writes in one transaction and
commits once: one history entry, so reverting to the version before it undoes exactly it.
Run actions only queue cells (the runner commits their ``"run"`` states at once, or, for a
cell that starts at once, with its start); their outputs come later, as the runner writes
them.

Positions: cells sort by ``pos`` (ties by id). A cell placed between two others gets the
midpoint of their positions; when there is no number strictly between them (equal positions
after concurrent inserts, or floats worn down by many inserts at one spot) every cell is
renumbered 0, 1, 2, … in the same commit first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from ..action_api import CellId, NotebookActionsAPI, TagName
from ..errors import InvalidActionError
from ..format.ipynb import ordered_outputs
from ..format.schema import CELL_TYPES
from ..origin import Origin

if TYPE_CHECKING:
    from ..documents.notebook import NotebookDocument
    from ..sync.table import Record, SyncDB


class CellRunner(Protocol):
    """What the run actions need of the notebook's runner (execution/runner.py)."""

    def run(self, cell_ids: Iterable[str], *, origin: Origin) -> list[str]: ...

    async def change_kernel(self, name: str) -> None: ...


class CellOrder:
    """The cells of a table in notebook order, and positions to place cells at."""

    def __init__(self, db: SyncDB) -> None:
        self.db = db
        # one pass over the records (the keys alone cost nothing): ~15 ms per 1000 cells
        # (keys(): pycrdt types ``Map.__iter__`` as returning an iterable, not an iterator)
        keys = [db.decode_key(encoded) for encoded in db.records.keys()]  # noqa: SIM118
        positions = db.field_values("pos")
        self.pos: dict[str, float] = {}
        for key in keys:
            if len(key) != 2 or key[0] != "cell":
                continue
            value = positions.get(key, 0)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            self.pos[str(key[1])] = value if is_number else 0
        self.ids = sorted(self.pos, key=lambda cell_id: (self.pos[cell_id], cell_id))

    def index(self, cell_id: str) -> int:
        return self.ids.index(cell_id)

    def position_at(self, index: int, origin: Origin, *, without: str | None = None) -> float:
        """A ``pos`` that puts a cell at ``index`` of the order (the order without the cell
        ``without``, when that one is moving); renumbers every cell when there is no room."""
        ids = [c for c in self.ids if c != without]
        before = ids[index - 1] if index > 0 else None
        after = ids[index] if index < len(ids) else None
        if before is None and after is None:
            return 0
        if before is None:
            assert after is not None
            return self.pos[after] - 1
        if after is None:
            return self.pos[before] + 1
        low, high = self.pos[before], self.pos[after]
        middle = (low + high) / 2
        if low < middle < high:
            return middle
        self._renumber(ids, origin)
        return index - 0.5

    def _renumber(self, ids: list[str], origin: Origin) -> None:
        for number, cell_id in enumerate(ids):
            if self.pos[cell_id] != number:
                self.pos[cell_id] = number
                self.db.set({"type": "cell", "id": cell_id, "pos": number}, origin)


class NotebookActions(NotebookActionsAPI):
    """The actions on one open notebook (module docstring), as ``NotebookActionsAPI``
    declares them (what each does is said there)."""

    def __init__(
        self,
        document: NotebookDocument,
        origin: Origin,
        runner: CellRunner | None = None,
        *,
        kernel_names: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.document = document
        #: who the actions are made for (one request's caller): every change is made as it
        self.origin = origin
        self.db = document.db
        self.runner = runner
        self._kernel_names = kernel_names

    # -- editing ------------------------------------------------------------------------------

    async def insert_cell(
        self,
        delta: int,
        id: CellId | None = None,
        cell_type: str = "code",
        input: str = "",
    ) -> dict[str, Any]:
        if delta not in (1, -1) or isinstance(delta, bool):
            raise InvalidActionError(f'"delta" must be 1 (below) or -1 (above), got {delta!r}')
        _check_cell_type(cell_type)
        order = CellOrder(self.db)
        if id is None:
            index = len(order.ids) if delta == 1 else 0
        else:
            self._require_cells([id])
            index = order.index(id) + (1 if delta == 1 else 0)
        new_id = self._new_cell_id()
        with self._change():
            pos = order.position_at(index, self.origin)
            self.db.set(
                {"type": "cell", "id": new_id, "cell_type": cell_type, "input": input, "pos": pos},
                self.origin,
            )
        return {"id": new_id, "version": await self._commit()}

    async def delete_cells(self, ids: list[CellId]) -> dict[str, Any]:
        self._require_cells(ids)
        with self._change():
            for cell_id in ids:
                self.db.delete({"type": "cell", "id": cell_id}, self.origin)
        return {"version": await self._commit()}

    async def move_cell(self, id: CellId, delta: int) -> dict[str, Any]:
        if not isinstance(delta, int) or isinstance(delta, bool):
            raise InvalidActionError(f'"delta" must be an integer, got {delta!r}')
        self._require_cells([id])
        order = CellOrder(self.db)
        index = max(0, min(len(order.ids) - 1, order.index(id) + delta))
        if index != order.index(id):
            with self._change():
                self.db.set(
                    {
                        "type": "cell",
                        "id": id,
                        "pos": order.position_at(index, self.origin, without=id),
                    },
                    self.origin,
                )
        return {"version": await self._commit()}

    async def merge_cells(self, ids: list[CellId]) -> dict[str, Any]:
        self._require_cells(ids)
        if len(set(ids)) < 2:
            raise InvalidActionError("merging needs at least two different cells")
        order = CellOrder(self.db)
        cells = [self._cell(c) for c in sorted(set(ids), key=order.index)]
        first = cells[0]
        outputs = [o for cell in cells for o in ordered_outputs(cell)]
        attachments: dict[str, Any] = {}
        for cell in cells:
            attachments.update(cell.get("attachments") or {})
        merged: dict[str, Any] = {
            "type": "cell",
            "id": first["id"],
            "input": "\n".join(cell.get("input", "") for cell in cells),
            "output": {str(i): output for i, output in enumerate(outputs)} or None,
            "attachments": attachments or None,
        }
        with self._change():
            self.db.set({"type": "cell", "id": first["id"], "output": None}, self.origin)
            self.db.set(merged, self.origin)
            for cell in cells[1:]:
                self.db.delete({"type": "cell", "id": cell["id"]}, self.origin)
        return {"id": first["id"], "version": await self._commit()}

    async def split_cell(self, id: CellId, cursor: int) -> dict[str, Any]:
        self._require_cells([id])
        cell = self._cell(id)
        text = cell.get("input", "")
        if not isinstance(cursor, int) or isinstance(cursor, bool) or not 0 <= cursor <= len(text):
            raise InvalidActionError(
                f'"cursor" must be an integer from 0 to {len(text)} (characters), got {cursor!r}'
            )
        top, bottom = text[:cursor], text[cursor:]
        top = top.removesuffix("\n")
        bottom = bottom.removeprefix("\n")
        order = CellOrder(self.db)
        new_id = self._new_cell_id()
        with self._change():
            pos = order.position_at(order.index(id) + 1, self.origin)
            self.db.set({"type": "cell", "id": id, "input": top}, self.origin)
            self.db.set(
                {
                    "type": "cell",
                    "id": new_id,
                    "cell_type": cell.get("cell_type", "code"),
                    "input": bottom,
                    "pos": pos,
                },
                self.origin,
            )
        return {"id": new_id, "version": await self._commit()}

    async def set_cell_type(
        self,
        id: CellId,
        cell_type: str,
    ) -> dict[str, Any]:
        _check_cell_type(cell_type)
        self._require_cells([id])
        record: dict[str, Any] = {"type": "cell", "id": id, "cell_type": cell_type}
        if cell_type != "code":
            record.update(output=None, exec_count=None)
        with self._change():
            self.db.set(record, self.origin)
        return {"version": await self._commit()}

    async def set_cell_input(
        self,
        id: CellId,
        input: str,
    ) -> dict[str, Any]:
        if not isinstance(input, str):
            raise InvalidActionError(f'"input" must be a string, got {type(input).__name__}')
        self._require_cells([id])
        with self._change():
            self.db.set({"type": "cell", "id": id, "input": input}, self.origin)
        return {"version": await self._commit()}

    async def clear_outputs(self, ids: list[CellId] | None = None) -> dict[str, Any]:
        if ids is not None:
            self._require_cells(ids)
        targets = ids if ids is not None else CellOrder(self.db).ids
        with self._change():
            for cell_id in targets:
                cell = self.db.peek(("cell", cell_id)) or {}
                if cell.get("state") == "busy":
                    continue
                if cell.get("output") or cell.get("exec_count") is not None:
                    self.db.set(
                        {"type": "cell", "id": cell_id, "output": None, "exec_count": None},
                        self.origin,
                    )
        return {"version": await self._commit()}

    async def toggle_tags(self, ids: list[CellId], tags: list[TagName]) -> dict[str, Any]:
        self._require_cells(ids)
        if not tags or not all(isinstance(t, str) and t and not t.isspace() for t in tags):
            raise InvalidActionError('"tags" must be a non-empty list of tag names')
        with self._change():
            for cell_id in ids:
                has = (self.db.peek(("cell", cell_id)) or {}).get("tags") or {}
                change = {tag: None if has.get(tag) else True for tag in dict.fromkeys(tags)}
                self.db.set({"type": "cell", "id": cell_id, "tags": change}, self.origin)
        return {"version": await self._commit()}

    # -- running ------------------------------------------------------------------------------

    async def run_cells(self, ids: list[CellId]) -> dict[str, Any]:
        self._require_cells(ids)
        return await self._run(ids)

    async def run_all(self) -> dict[str, Any]:
        return await self._run(CellOrder(self.db).ids)

    async def run_all_above(self, id: CellId) -> dict[str, Any]:
        self._require_cells([id])
        order = CellOrder(self.db)
        return await self._run(order.ids[: order.index(id)])

    async def run_all_below(self, id: CellId) -> dict[str, Any]:
        self._require_cells([id])
        order = CellOrder(self.db)
        return await self._run(order.ids[order.index(id) :])

    async def set_kernel(self, name: str) -> dict[str, Any]:
        if not isinstance(name, str) or not name:
            raise InvalidActionError('"name" must be a kernelspec name')
        if self._kernel_names is not None and name not in self._kernel_names():
            raise InvalidActionError(f"no kernel named {name!r} is installed")
        await self._runner().change_kernel(name)
        return {"kernel": name, "version": await self.document.table.durable()}

    async def _run(self, ids: Iterable[str]) -> dict[str, Any]:
        queued = self._runner().run(ids, origin=self.origin)
        return {"queued": queued, "version": await self.document.table.durable()}

    def _runner(self) -> CellRunner:
        if self.runner is None:
            raise InvalidActionError(f"{self.document.path} has no runner: it cannot run cells")
        return self.runner

    # -- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _change(self) -> Iterator[None]:
        """One transaction of the table (refused while its changes cannot be saved)."""
        self.document.table.check_writable()
        with self.db.transaction(self.origin):
            yield

    def _require_cells(self, ids: Any) -> None:
        if not isinstance(ids, list) or not all(isinstance(c, str) for c in ids):
            raise InvalidActionError("cell ids must be a list of strings")
        if not ids:
            raise InvalidActionError("no cell ids given")
        missing = [c for c in ids if self.db.peek(("cell", c)) is None]
        if missing:
            raise InvalidActionError(f"no such cells in {self.document.path}: {missing}")

    def _cell(self, cell_id: str) -> Record:
        record = self.db.get_one({"type": "cell", "id": cell_id})
        assert record is not None  # checked by _require_cells
        return record

    def _new_cell_id(self) -> str:
        while True:
            cell_id = uuid.uuid4().hex[:8]
            if self.db.peek(("cell", cell_id)) is None:
                return cell_id

    async def _commit(self) -> int:
        return await self.document.commit(self.origin)


def _check_cell_type(cell_type: Any) -> None:
    if cell_type not in CELL_TYPES:
        raise InvalidActionError(f'"cell_type" must be one of {CELL_TYPES}, got {cell_type!r}')
