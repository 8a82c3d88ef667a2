"""The operations of a differential sequence, each applied as its client applies it.

JupyterLab's (``NotebookActions`` in ``packages/notebook/src/actions.tsx`` over
``@jupyter/ydoc``: ``ydoc_model``) and jupyter-nbmodel-client's (plain JSON values where
JupyterLab has ``Map``, ``Text`` and ``Array``). Parameters are small integers resolved
against the notebook the client holds when the operation runs (``cell % len(cells)``), so any
sequence applies to any notebook, and the same sequence does the same on two servers that
agree. An operation that finds nothing to act on does nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Map, Text

from . import ydoc_model as y
from .clients import LabClient

Json = Any


class Op:
    """One user action; ``str(op)`` is how a failing sequence is printed."""

    def apply(self, c: LabClient) -> None:
        raise NotImplementedError

    def __str__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    __repr__ = __str__


def _cell(c: LabClient, index: int) -> Map | None:
    return c.cells[index % len(c.cells)] if len(c.cells) else None


def _code_cell(c: LabClient, index: int) -> Map | None:
    code = [cell for cell in c.cells if cell.get("cell_type") == "code"]
    return code[index % len(code)] if code else None


def _selection(c: LabClient, index: int, count: int) -> list[int]:
    if not len(c.cells):
        return []
    start = index % len(c.cells)
    return list(range(start, min(start + max(count, 1), len(c.cells))))


def _delete_cells(c: LabClient, indices: list[int]) -> None:
    """``Private.deleteCells``: one undoable transaction, a new cell if none is left."""
    with c.undoable():
        for index in sorted(indices, reverse=True):
            del c.cells[index]
        if not len(c.cells):
            y.insert_cells(c, 0, [{"cell_type": "code", "metadata": {"trusted": True}}])


def _paste(c: LabClient, at: int, keep_code_ids: bool) -> None:
    """``addCells(notebook, 'below', clipboard)``: the ids of code cells are kept only right
    after a cut (``lastClipboardInteraction === 'cut'``)."""
    values = copy.deepcopy(c.clipboard)
    for cell in values:
        if not (cell["cell_type"] == "code" and keep_code_ids):
            cell.pop("id", None)
    index = at % (len(c.cells) + 1)
    y.insert_cells(c, index, values)
    c.last_clipboard = "paste"


# -- cells ------------------------------------------------------------------------------------


@dataclass(repr=False)
class InsertCells(Op):
    """Insert (one transaction) new cells, or pasted ones with outputs and attachments."""

    at: int
    cells: list[dict[str, Json]]

    def apply(self, c: LabClient) -> None:
        y.insert_cells(c, self.at % (len(c.cells) + 1), copy.deepcopy(self.cells))


@dataclass(repr=False)
class DeleteCells(Op):
    at: int
    count: int = 1

    def apply(self, c: LabClient) -> None:
        if selected := _selection(c, self.at, self.count):
            _delete_cells(c, selected)


@dataclass(repr=False)
class MoveCells(Op):
    """``YNotebook.moveCells`` (Move Up/Down, drag and drop): the cells' JSON deleted and
    inserted again as new cells with the same ids, in one transaction."""

    at: int
    to: int
    count: int = 1

    def apply(self, c: LabClient) -> None:
        selected = _selection(c, self.at, self.count)
        if not selected:
            return
        start, n = selected[0], len(selected)
        to = self.to % len(c.cells)
        if start <= to < start + n:
            return  # Notebook.moveCell's no-op (a drop onto the selection itself)
        clones = [y.cell_to_json(c.cells[i]) for i in selected]
        target = to if start > to else to - n + 1
        with c.undoable():
            del c.cells[start : start + n]
            c.cells[target:target] = [y.create_cell(clone, c) for clone in clones]


@dataclass(repr=False)
class CutPaste(Op):
    at: int
    count: int
    to: int

    def apply(self, c: LabClient) -> None:
        selected = _selection(c, self.at, self.count)
        if not selected:
            return
        c.clipboard = [y.cell_to_json(c.cells[i]) for i in selected]
        _delete_cells(c, selected)
        _paste(c, self.to, keep_code_ids=True)


@dataclass(repr=False)
class CopyPaste(Op):
    at: int
    count: int
    to: int

    def apply(self, c: LabClient) -> None:
        selected = _selection(c, self.at, self.count)
        if not selected:
            return
        c.clipboard = [y.cell_to_json(c.cells[i]) for i in selected]
        _paste(c, self.to, keep_code_ids=False)


@dataclass(repr=False)
class DuplicateAfterCut(Op):
    """``NotebookActions.duplicate`` while the last clipboard action was a cut: code cells
    are inserted with their ids (two cells with one id, from JupyterLab itself)."""

    at: int
    count: int
    to: int

    def apply(self, c: LabClient) -> None:
        selected = _selection(c, self.at, self.count)
        if not selected:
            return
        c.clipboard = [y.cell_to_json(c.cells[i]) for i in selected]
        _paste(c, self.to, keep_code_ids=True)


@dataclass(repr=False)
class ChangeType(Op):
    """``Private.changeCellType``: the cell deleted and a new one of the new type inserted
    with the same id, source and metadata (``trusted`` set for code, dropped otherwise), the
    attachments kept for markdown and raw; one undoable transaction."""

    cell: int
    cell_type: str

    def apply(self, c: LabClient) -> None:
        ycell = _cell(c, self.cell)
        if ycell is None or ycell.get("cell_type") == self.cell_type:
            return
        index = self.cell % len(c.cells)
        raw = y.cell_to_json(ycell)
        metadata = raw["metadata"]
        if self.cell_type == "code":
            metadata["trusted"] = True
        else:
            metadata.pop("trusted", None)
        new = {"id": raw["id"], "cell_type": self.cell_type, "source": raw["source"]}
        new["metadata"] = metadata
        if raw.get("attachments") and self.cell_type in ("markdown", "raw"):
            new["attachments"] = raw["attachments"]  # set on the new cell in the transaction
        with c.undoable():
            del c.cells[index]
            c.cells.insert(index, y.create_cell(new, c))


@dataclass(repr=False)
class Merge(Op):
    """``NotebookActions.mergeCells``: the selected cells (or the active one and the next)
    become one new cell (new id) of the active cell's type, sources joined by a blank line,
    no outputs, markdown/raw attachments together; one undoable transaction."""

    cell: int
    count: int = 2

    def apply(self, c: LabClient) -> None:
        selected = _selection(c, self.cell, self.count)
        if len(selected) < 2:
            return
        cells = [y.cell_to_json(c.cells[i]) for i in selected]
        primary = cells[0]
        attachments: dict[str, Json] = {}
        for cell in cells:
            if cell["cell_type"] in ("markdown", "raw"):
                attachments.update(cell.get("attachments") or {})
        metadata = primary["metadata"]
        if primary["cell_type"] == "code":
            metadata["trusted"] = True
        new: dict[str, Json] = {
            "cell_type": primary["cell_type"],
            "metadata": metadata,
            "source": "\n\n".join(cell["source"] for cell in cells),
        }
        if primary["cell_type"] != "code":
            new["attachments"] = attachments
        active = selected[0]
        with c.undoable():
            del c.cells[active]
            c.cells.insert(active, y.create_cell(new, c))
            for index in sorted(selected[1:], reverse=True):
                del c.cells[index]


@dataclass(repr=False)
class Split(Op):
    """``NotebookActions.splitCell`` at a cursor: the text before it (newlines trimmed at both
    ends) becomes a new cell above (new id, same type and metadata, no outputs); the cell keeps
    the rest, its id and its outputs; one undoable transaction."""

    cell: int
    cursor: int

    def apply(self, c: LabClient) -> None:
        ycell = _cell(c, self.cell)
        if ycell is None:
            return
        index = self.cell % len(c.cells)
        cell = y.cell_to_json(ycell)
        source = cell["source"]
        cursor = self.cursor % (len(source) + 1)
        metadata = cell["metadata"]
        execution = metadata.get("execution")
        if (
            cell["cell_type"] == "code"
            and isinstance(execution, dict)
            and execution.get("iopub.execute_input")
            and not execution.get("shell.execute_reply")
        ):
            del metadata["execution"]
        above = {
            "cell_type": cell["cell_type"],
            "metadata": metadata,
            "source": source[:cursor].strip("\n"),
        }
        with c.undoable():
            c.cells.insert(index, y.create_cell(above, c))
            y.set_source(c, ycell, source[cursor:].strip("\n"))


# -- sources ----------------------------------------------------------------------------------


@dataclass(repr=False)
class EditSource(Op):
    """Typing, deleting or replacing a range (``updateSource``), offsets in characters."""

    cell: int
    start: int
    length: int
    text: str

    def apply(self, c: LabClient) -> None:
        ycell = _cell(c, self.cell)
        if ycell is None:
            return
        current = str(ycell.get("source") or "")
        start = self.start % (len(current) + 1)
        end = min(start + self.length, len(current))
        y.update_source(c, ycell, start, end, self.text)


@dataclass(repr=False)
class SetSource(Op):
    cell: int
    text: str

    def apply(self, c: LabClient) -> None:
        if (ycell := _cell(c, self.cell)) is not None:
            y.set_source(c, ycell, self.text)


# -- outputs ----------------------------------------------------------------------------------


@dataclass(repr=False)
class ClearAllOutputs(Op):
    """``NotebookActions.clearAllOutputs``: one transaction per code cell."""

    def apply(self, c: LabClient) -> None:
        for ycell in list(c.cells):
            if ycell.get("cell_type") == "code":
                y.clear_execution(c, ycell)


@dataclass(repr=False)
class ClearOutputs(Op):
    """``NotebookActions.clearOutputs`` of one (code) cell."""

    cell: int

    def apply(self, c: LabClient) -> None:
        if (ycell := _code_cell(c, self.cell)) is not None:
            y.clear_execution(c, ycell)


@dataclass(repr=False)
class UpdateOutputs(Op):
    """``YCodeCell.updateOutputs(start, end, outputs)``: remove one output (no outputs), append
    (start = end = length), or replace a range."""

    cell: int
    start: int
    end: int
    outputs: list[dict[str, Json]] = field(default_factory=list)

    def apply(self, c: LabClient) -> None:
        ycell = _code_cell(c, self.cell)
        youtputs = ycell.get("outputs") if ycell is not None else None
        if not isinstance(youtputs, Array):
            return
        start = self.start % (len(youtputs) + 1)
        end = start + self.end % (len(youtputs) - start + 1)
        y.update_outputs(c, ycell, start, end, copy.deepcopy(self.outputs))


@dataclass(repr=False)
class StreamAppend(Op):
    """A running cell's stream grows (``appendStreamOutput``), or redraws its tail after a
    carriage return (``removeStreamOutput`` then ``appendStreamOutput``, two transactions)."""

    cell: int
    text: str
    keep: int | None = None

    def apply(self, c: LabClient) -> None:
        ycell = _code_cell(c, self.cell)
        youtputs = ycell.get("outputs") if ycell is not None else None
        if not isinstance(youtputs, Array):
            return
        streams = [o for o in youtputs if isinstance(o, Map) and isinstance(o.get("text"), Text)]
        if not streams:
            return
        text: Text = streams[-1]["text"]
        if self.keep is not None:
            current = str(text)
            start = y.byte_offset(current, self.keep % (len(current) + 1))
            with c.plain():
                del text[start : len(current.encode())]
        with c.plain():
            text += self.text


@dataclass(repr=False)
class SetExecutionCount(Op):
    cell: int
    count: int | None

    def apply(self, c: LabClient) -> None:
        if (ycell := _code_cell(c, self.cell)) is not None:
            y.set_execution_count(c, ycell, self.count)


# -- metadata, attachments, format, state -----------------------------------------------------


@dataclass(repr=False)
class SetCellMetadata(Op):
    """The property inspector / a command setting one key (``setMetadata(key, value)``); a
    nested change sets the whole new value of the key, as the metadata editor does."""

    cell: int
    key: str
    value: Json
    nested: str | None = None

    def apply(self, c: LabClient) -> None:
        if (ycell := _cell(c, self.cell)) is None:
            return
        value = copy.deepcopy(self.value)
        if self.nested is not None:
            current = y.get_cell_metadata(ycell, self.key)
            value = {**(current if isinstance(current, dict) else {}), self.nested: value}
        y.set_cell_metadata(c, ycell, self.key, value)


@dataclass(repr=False)
class DeleteCellMetadata(Op):
    cell: int
    key: str

    def apply(self, c: LabClient) -> None:
        if (ycell := _cell(c, self.cell)) is not None:
            y.delete_cell_metadata(c, ycell, self.key)


@dataclass(repr=False)
class SetNotebookMetadata(Op):
    key: str
    value: Json
    nested: str | None = None

    def apply(self, c: LabClient) -> None:
        value = copy.deepcopy(self.value)
        if self.nested is not None:
            current = y.get_notebook_metadata(c).get(self.key)
            value = {**(current if isinstance(current, dict) else {}), self.nested: value}
        y.set_notebook_metadata(c, self.key, value)


@dataclass(repr=False)
class DeleteNotebookMetadata(Op):
    key: str

    def apply(self, c: LabClient) -> None:
        y.delete_notebook_metadata(c, self.key)


@dataclass(repr=False)
class SetAttachments(Op):
    """``YAttachmentCell.setAttachments`` (a plain JSON value; None deletes the key), on the
    markdown or raw cell ``cell`` counts among them."""

    cell: int
    attachments: dict[str, Json] | None

    def apply(self, c: LabClient) -> None:
        cells = [x for x in c.cells if x.get("cell_type") in ("markdown", "raw")]
        if not cells:
            return
        ycell = cells[self.cell % len(cells)]
        with c.plain():
            if self.attachments is None:
                if "attachments" in ycell:
                    del ycell["attachments"]
            else:
                ycell["attachments"] = copy.deepcopy(self.attachments)


@dataclass(repr=False)
class SetNbformat(Op):
    """The ``nbformat`` / ``nbformat_minor`` setters."""

    key: str
    value: int

    def apply(self, c: LabClient) -> None:
        with c.plain():
            c.meta[self.key] = self.value


@dataclass(repr=False)
class SetState(Op):
    """``YDocument.setState(key, value)`` on the document's ``state`` map."""

    key: str
    value: Json

    def apply(self, c: LabClient) -> None:
        with c.plain():
            c.state[self.key] = copy.deepcopy(self.value)


@dataclass(repr=False)
class Undo(Op):
    def apply(self, c: LabClient) -> None:
        c.undo_manager.undo()


@dataclass(repr=False)
class Redo(Op):
    def apply(self, c: LabClient) -> None:
        c.undo_manager.redo()
