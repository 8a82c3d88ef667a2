"""Sequences across a server restart and across an unload (the document closed after its last
client left): a client joining afterwards, the file, and further edits agree with stock; ours
also agrees with what it showed before."""

from __future__ import annotations

from collections.abc import Sequence

from helpers import eventually

from . import ops as o
from . import plain_ops as p
from .compare import differences, normal_view
from .notebooks import ATTACHMENT, IMAGE, RESULT, STREAM, initial_notebook
from .runner import LoopThread, Target, joiner_view, new_path, restart
from .verdict import check_sequence, describe

BEFORE: list[o.Op] = [
    o.ChangeType(1, "markdown"),
    o.ClearOutputs(1),
    o.SetCellMetadata(0, "tags", []),
    o.InsertCells(2, [{"cell_type": "code", "source": "new", "outputs": [STREAM, IMAGE]}]),
    o.Merge(3, 2),
    o.SetAttachments(0, ATTACHMENT),
    p.PlainAppendOutput(0, RESULT),
    o.EditSource(0, 2, 3, "é🎉"),
    o.MoveCells(4, 0),
    o.SetNotebookMetadata("custom", 1, nested="n"),
]
AFTER: list[o.Op] = [
    o.Undo(),  # a new client: nothing to undo
    o.ClearAllOutputs(),
    o.Split(0, 3),
    o.DeleteCells(2, 2),
    p.PlainCellMetadata(1, {"tags": ["t"]}),
    o.StreamAppend(0, "more\n"),
]


def _reopened_as_before(
    loop: LoopThread, targets: Sequence[Target], path: str, before: dict, what: str
) -> None:
    """After ``what``, a joining client sees on both servers what ours showed before it."""
    stock_view, our_view = (loop.run(joiner_view(t, path)) for t in targets)
    found = [
        f"stock vs ours: {d}" for d in differences(normal_view(stock_view), normal_view(our_view))
    ]
    found += [
        f"ours before vs after: {d}"
        for d in differences(normal_view(before), normal_view(our_view))
    ]
    assert not found, f"after {what}, the sequence\n{describe(BEFORE)}\n" + "\n".join(found)


def test_sequences_across_a_restart(targets, loop):
    path = new_path()
    _, ours = check_sequence(loop, targets, initial_notebook(), BEFORE, path=path)
    for target in targets:
        restart(target, loop)
    _reopened_as_before(loop, targets, path, ours.live, "a restart")
    check_sequence(loop, targets, initial_notebook(), AFTER, " after a restart", path, True)


def test_sequences_across_an_unload(targets, loop):
    stock, ours = targets
    path = new_path()
    log_from = {t.name: len(t.process.log()) for t in targets}
    _, outcome = check_sequence(loop, targets, initial_notebook(), BEFORE, path=path)
    file_id = loop.run(stock.client.session(path))["fileId"]
    # one client that leaves alone: stock starts its cleanup only when the client leaving is
    # the last one it counts, and two leaving together can each still count the other
    for target in targets:
        loop.run(joiner_view(target, path))

    def unloaded() -> bool:
        return stock.process.unloaded(file_id, log_from["stock"]) and ours.process.unloaded(
            path, log_from["ours"]
        )

    loop.run(eventually(unloaded, timeout=30))
    _reopened_as_before(loop, targets, path, outcome.live, "an unload")
    check_sequence(loop, targets, initial_notebook(), AFTER, " after an unload", path, True)
