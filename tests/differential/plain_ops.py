"""Operations as clients other than JupyterLab write them: plain JSON values where JupyterLab
has ``Map``, ``Text`` and ``Array`` — ``jupyter-nbmodel-client`` (used by
``jupyter-kernel-client`` and ``jupyter-mcp-server``): outputs as plain dicts (a stream's text a
plain string) appended, replaced at an index or cleared and extended; metadata keys deleted
then set; cells made by ``jupyter_ydoc``'s ``create_ycell``; and whole values replaced by plain
ones (a cell's ``metadata``, the notebook's ``metadata``, a cell's ``source``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Map, Text

from .clients import LabClient
from .ops import Op, _cell, _code_cell

Json = Any


@dataclass(repr=False)
class PlainAppendOutput(Op):
    """``save_in_notebook_hook``: a new output appended as a plain dict."""

    cell: int
    output: dict[str, Json]

    def apply(self, c: LabClient) -> None:
        ycell = _code_cell(c, self.cell)
        youtputs = ycell.get("outputs") if ycell is not None else None
        if isinstance(youtputs, Array):
            with c.plain():
                youtputs.append(copy.deepcopy(self.output))


@dataclass(repr=False)
class PlainSetOutput(Op):
    """``save_in_notebook_hook`` for an updated output: ``outputs[index] = plain dict``."""

    cell: int
    index: int
    output: dict[str, Json]

    def apply(self, c: LabClient) -> None:
        ycell = _code_cell(c, self.cell)
        youtputs = ycell.get("outputs") if ycell is not None else None
        if isinstance(youtputs, Array) and len(youtputs):
            with c.plain():
                index = self.index % len(youtputs)
                del youtputs[index]
                youtputs.insert(index, copy.deepcopy(self.output))


@dataclass(repr=False)
class PlainReplaceOutputs(Op):
    """``save_in_notebook_hook`` after ``clear_output``: cleared and extended, plain dicts."""

    cell: int
    outputs: list[dict[str, Json]]

    def apply(self, c: LabClient) -> None:
        ycell = _code_cell(c, self.cell)
        youtputs = ycell.get("outputs") if ycell is not None else None
        if isinstance(youtputs, Array):
            with c.plain():
                youtputs.clear()
                youtputs.extend(copy.deepcopy(self.outputs))


@dataclass(repr=False)
class PlainClearOutputs(Op):
    """``NotebookModel.execute_cell`` starting: ``del outputs[:]``, count set to None."""

    cell: int

    def apply(self, c: LabClient) -> None:
        ycell = _code_cell(c, self.cell)
        youtputs = ycell.get("outputs") if ycell is not None else None
        if isinstance(youtputs, Array):
            with c.plain():
                del youtputs[0 : len(youtputs)]
                ycell["execution_count"] = None


@dataclass(repr=False)
class PlainSetCellMetadataKey(Op):
    """``NotebookModel.set_cell_metadata``: the key deleted, then set."""

    cell: int
    key: str
    value: Json

    def apply(self, c: LabClient) -> None:
        ycell = _cell(c, self.cell)
        ymetadata = ycell.get("metadata") if ycell is not None else None
        if isinstance(ymetadata, Map):
            with c.plain():
                if self.key in ymetadata:
                    del ymetadata[self.key]
                ymetadata[self.key] = copy.deepcopy(self.value)


@dataclass(repr=False)
class PlainCellMetadata(Op):
    """A cell's whole ``metadata`` replaced by a plain JSON object."""

    cell: int
    metadata: dict[str, Json]

    def apply(self, c: LabClient) -> None:
        if (ycell := _cell(c, self.cell)) is not None:
            with c.plain():
                ycell["metadata"] = copy.deepcopy(self.metadata)


@dataclass(repr=False)
class PlainNotebookMetadata(Op):
    """The notebook's whole ``metadata`` replaced by a plain JSON object."""

    metadata: dict[str, Json]

    def apply(self, c: LabClient) -> None:
        with c.plain():
            c.meta["metadata"] = copy.deepcopy(self.metadata)


@dataclass(repr=False)
class PlainSetNotebookMetadataKey(Op):
    """``NotebookModel.set_notebook_metadata``: the key deleted, then set."""

    key: str
    value: Json

    def apply(self, c: LabClient) -> None:
        ymetadata = c.meta.get("metadata")
        if isinstance(ymetadata, Map):
            with c.plain():
                if self.key in ymetadata:
                    del ymetadata[self.key]
                ymetadata[self.key] = copy.deepcopy(self.value)


@dataclass(repr=False)
class PlainSetSource(Op):
    """``NotebookModel.set_cell_source``: the ``Text`` cleared, the new text inserted."""

    cell: int
    text: str

    def apply(self, c: LabClient) -> None:
        ycell = _cell(c, self.cell)
        source = ycell.get("source") if ycell is not None else None
        if isinstance(source, Text):
            with c.plain():
                source.clear()
                source.insert(0, self.text)


@dataclass(repr=False)
class PlainInsertCell(Op):
    """``NotebookModel.insert``: a cell made by ``jupyter_ydoc.YNotebook.create_ycell`` (an
    ``execution_state``, outputs as ``Map``s) inserted in a transaction of its own."""

    at: int
    cell: dict[str, Json]

    def apply(self, c: LabClient) -> None:
        cell = copy.deepcopy(self.cell)
        cell.setdefault("id", c.new_cell_id())
        cell.setdefault("metadata", {})
        if cell["cell_type"] == "code":  # as nbformat.v4.new_code_cell makes it
            # a dict of its own per output, as JSON read from a message or a file has:
            # hypothesis draws equal outputs as one object, which deepcopy keeps one, and
            # create_ycell turns a stream's text into a Text in place, so a second stream
            # sharing the dict would read the first one's Text before it is in a document
            cell["outputs"] = [copy.deepcopy(o) for o in cell.get("outputs", [])]
            cell.setdefault("execution_count", None)
        ycell = c.ynb.create_ycell(cell)
        with c.plain():
            c.cells.insert(self.at % (len(c.cells) + 1), ycell)
