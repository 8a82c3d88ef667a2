"""Hypothesis strategies: random sequences of the operations in ``ops`` and ``plain_ops``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from . import ops as o
from . import plain_ops as p
from .notebooks import ATTACHMENT, ERROR, IMAGE, JSON_DATA, OTHER_ATTACHMENT, RESULT, STDERR, STREAM

small = st.integers(0, 12)
count = st.integers(1, 3)
TEXTS = ["x", "print(1)\n", "é", "中文", "🎉", "e\u0301", "👨‍👩‍👧", "\n", "a b\tc", "", "#"]
text = st.one_of(
    st.sampled_from(TEXTS),
    st.lists(st.sampled_from(TEXTS), min_size=1, max_size=5).map("".join),
    st.just("y" * 5000),  # a very long line
)
outputs = st.lists(st.sampled_from([STREAM, STDERR, RESULT, IMAGE, JSON_DATA, ERROR]), max_size=3)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["s", "é"]))
json_value = st.one_of(
    json_scalar,
    st.lists(json_scalar, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), json_scalar, max_size=2),
)
cell_keys = st.sampled_from(
    ["tags", "custom", "collapsed", "scrolled", "jupyter", "execution", "k"]
)
notebook_keys = st.sampled_from(["custom", "language_info", "kernelspec", "k", "widgets"])
tags = st.lists(st.sampled_from(["a", "b", "intro", "z"]), max_size=3)


def _cell_metadata_value(key: str) -> Any:
    if key == "tags":
        return tags
    if key in ("collapsed", "scrolled"):
        return st.booleans()
    if key == "jupyter":
        return st.fixed_dictionaries({}, optional={"outputs_hidden": st.booleans()})
    return json_value


cell_metadata = cell_keys.flatmap(
    lambda key: st.builds(o.SetCellMetadata, small, st.just(key), _cell_metadata_value(key))
)
new_cell = st.one_of(
    st.fixed_dictionaries(
        {"cell_type": st.just("code"), "source": text},
        optional={"outputs": outputs, "execution_count": st.integers(1, 9)},
    ),
    st.fixed_dictionaries(
        {"cell_type": st.sampled_from(["markdown", "raw"]), "source": text},
        optional={"attachments": st.sampled_from([ATTACHMENT, OTHER_ATTACHMENT])},
    ),
)

operation = st.one_of(
    # cells
    st.builds(o.InsertCells, small, st.lists(new_cell, min_size=1, max_size=3)),
    st.builds(o.DeleteCells, small, count),
    st.builds(o.MoveCells, small, small, count),
    st.builds(o.CutPaste, small, count, small),
    st.builds(o.CopyPaste, small, count, small),
    st.builds(o.DuplicateAfterCut, small, count, small),
    st.builds(o.ChangeType, small, st.sampled_from(["code", "markdown", "raw"])),
    st.builds(o.Merge, small, st.integers(1, 3)),
    st.builds(o.Split, small, st.integers(0, 40)),
    # sources
    st.builds(o.EditSource, small, st.integers(0, 40), st.integers(0, 6), text),
    st.builds(o.SetSource, small, text),
    # outputs
    st.builds(o.ClearAllOutputs),
    st.builds(o.ClearOutputs, small),
    st.builds(o.UpdateOutputs, small, small, small, outputs),
    st.builds(o.StreamAppend, small, text, st.one_of(st.none(), small)),
    st.builds(o.SetExecutionCount, small, st.one_of(st.none(), st.integers(0, 99))),
    # metadata, attachments, format, state
    cell_metadata,
    st.builds(o.SetCellMetadata, small, st.just("custom"), json_scalar, st.just("nested")),
    st.builds(o.DeleteCellMetadata, small, cell_keys),
    st.builds(o.SetNotebookMetadata, notebook_keys, json_value),
    st.builds(o.SetNotebookMetadata, st.just("custom"), json_scalar, st.just("flag")),
    st.builds(o.DeleteNotebookMetadata, notebook_keys),
    st.builds(o.SetAttachments, small, st.sampled_from([None, ATTACHMENT, OTHER_ATTACHMENT])),
    st.builds(o.SetState, st.sampled_from(["custom", "other"]), json_scalar),
    # undo and redo
    st.builds(o.Undo),
    st.builds(o.Redo),
    # jupyter-nbmodel-client's shapes
    st.builds(p.PlainAppendOutput, small, st.sampled_from([STREAM, STDERR, RESULT, IMAGE])),
    st.builds(p.PlainSetOutput, small, small, st.sampled_from([STREAM, RESULT, ERROR])),
    st.builds(p.PlainReplaceOutputs, small, outputs),
    st.builds(p.PlainClearOutputs, small),
    st.builds(p.PlainSetCellMetadataKey, small, cell_keys, json_value),
    st.builds(p.PlainCellMetadata, small, st.dictionaries(cell_keys, json_value, max_size=3)),
    st.builds(p.PlainNotebookMetadata, st.dictionaries(notebook_keys, json_value, max_size=3)),
    st.builds(p.PlainSetNotebookMetadataKey, notebook_keys, json_value),
    st.builds(p.PlainSetSource, small, text),
    st.builds(p.PlainInsertCell, small, new_cell),
)

sequences = st.lists(operation, min_size=1, max_size=8)
