"""Every operation once (and the structural ones undone and redone), by name."""

from __future__ import annotations

from .notebooks import ATTACHMENT, ERROR, IMAGE, OTHER_ATTACHMENT, RESULT, STDERR, STREAM
from .ops import (
    ChangeType,
    ClearAllOutputs,
    ClearOutputs,
    CopyPaste,
    CutPaste,
    DeleteCellMetadata,
    DeleteCells,
    DeleteNotebookMetadata,
    DuplicateAfterCut,
    EditSource,
    InsertCells,
    Merge,
    MoveCells,
    Op,
    Redo,
    SetAttachments,
    SetCellMetadata,
    SetExecutionCount,
    SetNbformat,
    SetNotebookMetadata,
    SetSource,
    SetState,
    Split,
    StreamAppend,
    Undo,
    UpdateOutputs,
)
from .plain_ops import (
    PlainAppendOutput,
    PlainCellMetadata,
    PlainClearOutputs,
    PlainInsertCell,
    PlainNotebookMetadata,
    PlainReplaceOutputs,
    PlainSetCellMetadataKey,
    PlainSetNotebookMetadataKey,
    PlainSetOutput,
    PlainSetSource,
)

PASTED = {
    "cell_type": "code",
    "source": "pasted",
    "metadata": {"tags": ["p"]},
    "outputs": [STREAM, IMAGE],
    "execution_count": 9,
}

#: one operation each (the undoable ones below also undone and redone)
OPERATIONS: dict[str, list[Op]] = {
    "insert one cell": [InsertCells(2, [{"cell_type": "code", "metadata": {"trusted": True}}])],
    "insert several cells": [
        InsertCells(0, [{"cell_type": "markdown", "source": "m"}, {"cell_type": "raw"}])
    ],
    "insert a pasted cell with outputs": [InsertCells(1, [PASTED])],
    "delete one cell": [DeleteCells(1)],
    "delete several cells": [DeleteCells(1, 3)],
    "delete every cell": [DeleteCells(0, 10)],
    "move one cell down": [MoveCells(1, 3)],
    "move several cells up (drag)": [MoveCells(3, 0, 2)],
    "cut and paste": [CutPaste(1, 2, 4)],
    "copy and paste (new ids)": [CopyPaste(1, 2, 0)],
    "duplicate after a cut (an id twice)": [DuplicateAfterCut(1, 1, 3)],
    "duplicate above the original (an id twice)": [DuplicateAfterCut(2, 1, 0)],
    # stock renames one id per save (of cells that differ), and that save writes nothing
    "duplicate two code cells after a cut, one copy edited (two ids twice)": [
        DuplicateAfterCut(1, 2, 5),
        SetCellMetadata(6, "tags", ["copy"]),
    ],
    # ours gave the copy a new id at once; stock gives it none once the original is gone
    "duplicate above the original, a cell inserted, the original deleted": [
        DuplicateAfterCut(0, 2, 0),
        InsertCells(0, [{"cell_type": "code", "source": "x"}]),
        DeleteCells(3, 2),
    ],
    "duplicate below the original, the original deleted": [
        DuplicateAfterCut(1, 1, 2),
        DeleteCells(1),
    ],
    "duplicate below the original, the copy deleted": [
        DuplicateAfterCut(1, 1, 2),
        DeleteCells(2),
    ],
    # the second copy is a copy of the first one, inserted with the id ours gave the first
    "duplicate a copy after a cut": [
        DuplicateAfterCut(0, 2, 0),
        DuplicateAfterCut(0, 2, 0),
    ],
    # stock keeps both cells (they differ: null is a value); ours saves the copy without the key
    "duplicate above the original, a key of the copy set to null": [
        DuplicateAfterCut(4, 1, 4),
        PlainSetCellMetadataKey(4, "tags", None),
    ],
    "insert a cell with another cell's id": [
        InsertCells(0, [{"cell_type": "code", "id": "code-b", "source": "other"}])
    ],
    "type into a cell": [EditSource(1, 3, 0, "XY")],
    "delete a range": [EditSource(1, 2, 5, "")],
    "replace a range with multi-byte text": [EditSource(0, 10, 4, "é🎉中文e\u0301👨‍👩‍👧")],
    "set a whole source": [SetSource(2, "中文\u0301 " * 3)],
    "a very long line": [EditSource(0, 0, 0, "a" * 30000)],
    "code to markdown": [ChangeType(1, "markdown")],
    "markdown with attachments to code": [ChangeType(0, "code")],
    "markdown with attachments to raw": [ChangeType(0, "raw")],
    "raw to markdown": [ChangeType(3, "markdown")],
    "clear all outputs": [ClearAllOutputs()],
    "clear one cell's outputs": [ClearOutputs(1)],
    "remove one output": [UpdateOutputs(1, 1, 1)],
    "append an output": [UpdateOutputs(0, 2, 0, [RESULT])],
    "replace a range of outputs": [UpdateOutputs(1, 0, 2, [ERROR, STDERR])],
    "stream text appended": [StreamAppend(0, "more é\n")],
    "stream tail redrawn": [StreamAppend(0, "redrawn\n", keep=2)],
    "execution count set": [SetExecutionCount(0, 7)],
    "execution count cleared": [SetExecutionCount(1, None)],
    "cell metadata set": [SetCellMetadata(1, "tags", ["z", "a"])],
    "cell collapsed": [SetCellMetadata(1, "collapsed", True)],
    "last tag removed": [SetCellMetadata(0, "tags", [])],
    "one tag of two removed": [SetCellMetadata(2, "tags", ["a"])],
    "cell metadata nested change": [SetCellMetadata(2, "custom", 5, nested="y")],
    "cell metadata null value": [SetCellMetadata(1, "nullish", None)],
    "cell metadata key deleted": [DeleteCellMetadata(1, "custom")],
    "cell collapsed deleted": [DeleteCellMetadata(1, "collapsed")],
    "notebook metadata set": [SetNotebookMetadata("k", {"a": [1, "b"]})],
    "notebook metadata nested change": [SetNotebookMetadata("custom", 3, nested="n")],
    "notebook metadata null value": [SetNotebookMetadata("k", None)],
    "notebook metadata key deleted": [DeleteNotebookMetadata("language_info")],
    "kernelspec not an object, then a cell": [
        SetNotebookMetadata("kernelspec", True),
        InsertCells(0, [{"cell_type": "code"}]),
    ],
    "cell metadata set to null": [SetCellMetadata(1, "custom", None)],
    "notebook metadata set to null": [SetNotebookMetadata("custom", None)],
    "attachments replaced": [SetAttachments(0, OTHER_ATTACHMENT)],
    "attachments removed": [SetAttachments(0, None)],
    "attachments added": [SetAttachments(1, ATTACHMENT)],
    "nbformat_minor lowered": [SetNbformat("nbformat_minor", 4)],
    "state map entry": [SetState("custom", {"v": 1})],
    "merge two cells": [Merge(1, 2)],
    "merge markdown with attachments and more": [Merge(0, 3)],
    "split a code cell": [Split(1, 6)],
    "split a markdown cell": [Split(0, 7)],
    # jupyter-nbmodel-client's shapes
    "plain stream output appended": [PlainAppendOutput(0, STREAM)],
    "plain result appended": [PlainAppendOutput(2, RESULT)],
    "plain output replaced at an index": [PlainSetOutput(0, 0, STDERR)],
    "plain outputs cleared and extended": [PlainReplaceOutputs(1, [STREAM, IMAGE])],
    "plain outputs cleared": [PlainClearOutputs(0)],
    "plain metadata key deleted and set": [PlainSetCellMetadataKey(1, "tags", ["p"])],
    "cell metadata as a plain object": [PlainCellMetadata(1, {"tags": ["x"], "c": {"d": 1}})],
    "notebook metadata as a plain object": [
        PlainNotebookMetadata({"kernelspec": {"name": "python3", "display_name": "P"}, "x": 1})
    ],
    "plain notebook metadata key": [PlainSetNotebookMetadataKey("x", [1, 2])],
    "plain source set": [PlainSetSource(1, "plain src")],
    "cell from create_ycell": [
        PlainInsertCell(1, {"cell_type": "code", "source": "i", "outputs": [STREAM]})
    ],
    # one dict twice, as hypothesis draws two equal outputs
    "cell from create_ycell with two equal streams": [
        PlainInsertCell(1, {"cell_type": "code", "source": "i", "outputs": [STREAM, STREAM]})
    ],
    "plain stream then a JupyterLab append": [
        PlainAppendOutput(0, STREAM),
        StreamAppend(0, "x"),
    ],
    "plain output, then cleared by JupyterLab": [PlainAppendOutput(4, RESULT), ClearAllOutputs()],
}

#: operations JupyterLab's undo manager records (structure and sources)
UNDOABLE = [
    "insert several cells",
    "delete several cells",
    "delete every cell",
    "move several cells up (drag)",
    "cut and paste",
    "copy and paste (new ids)",
    "replace a range with multi-byte text",
    "code to markdown",
    "markdown with attachments to code",
    "merge markdown with attachments and more",
    "split a code cell",
    "duplicate after a cut (an id twice)",
]

SEQUENCES: dict[str, list[Op]] = {
    **OPERATIONS,
    **{f"{name}, undone": [*OPERATIONS[name], Undo()] for name in UNDOABLE},
    **{f"{name}, undone and redone": [*OPERATIONS[name], Undo(), Redo()] for name in UNDOABLE},
}
