"""The three-way merge of a notebook changed on disk into the live table (``format/merge.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_cocalc_sync.format import ipynb_text
from jupyter_cocalc_sync.format.merge import (
    SavedDigests,
    digest,
    merge_notebook,
    merge_text,
)

STREAM = {"output_type": "stream", "name": "stdout", "text": "1\n"}


def code(cell_id: str, source: str, pos: float, **fields: Any) -> dict[str, Any]:
    return {
        "type": "cell",
        "id": cell_id,
        "cell_type": "code",
        "input": source,
        "pos": pos,
        **fields,
    }


def nothing_saved() -> SavedDigests:
    return SavedDigests(notebook="", outputs={})


def saved_outputs(**by_cell: list[dict[str, Any]]) -> SavedDigests:
    return SavedDigests(notebook="", outputs={k: digest(v) for k, v in by_cell.items()})


def sets_of(merge, cell_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for record in merge.sets:
        if record.get("id") == cell_id:
            found.update(record)
    return found


# -- lines ----------------------------------------------------------------------------------


def test_text_takes_the_disk_change_when_live_kept_the_base():
    assert merge_text("a\nb\n", "a\nB\n", "a\nb\n") == "a\nB\n"


def test_text_keeps_live_when_only_live_changed():
    assert merge_text("a\nb\n", "a\nb\n", "a\nb\nlive\n") == "a\nb\nlive\n"


def test_text_applies_disk_hunks_that_touch_other_lines_than_live():
    base = "one\ntwo\nthree\nfour\n"
    disk = "ONE\ntwo\nthree\nfour\n"
    live = "one\ntwo\nthree\nFOUR\n"
    assert merge_text(base, disk, live) == "ONE\ntwo\nthree\nFOUR\n"


def test_text_conflicts_keep_live_lines():
    assert merge_text("x\n", "disk\n", "live\n") == "live\n"


# -- records --------------------------------------------------------------------------------


def test_a_source_edited_on_disk_and_live_merges_line_wise():
    base = [code("a", "one\ntwo\nthree\n", 0)]
    disk = [code("a", "ONE\ntwo\nthree\n", 0)]
    live = [code("a", "one\ntwo\nthree!\n", 0)]
    merge = merge_notebook(base, disk, live, nothing_saved())
    assert sets_of(merge, "a")["input"] == "ONE\ntwo\nthree!\n"
    assert merge.deletes == []


def test_a_field_changed_on_disk_is_taken_only_where_live_kept_the_base_value():
    base = [code("a", "x", 0, collapsed=False), code("b", "y", 1, collapsed=False)]
    disk = [code("a", "x", 0, collapsed=True), code("b", "y", 1, collapsed=True)]
    live = [code("a", "x", 0, collapsed=False), code("b", "y", 1, collapsed="live")]
    merge = merge_notebook(base, disk, live, nothing_saved())
    assert sets_of(merge, "a").get("collapsed") is True
    assert "collapsed" not in sets_of(merge, "b")  # live changed it too: live wins


def test_metadata_merges_key_by_key():
    base = [code("a", "x", 0, metadata={"tags": 1, "k": "base", "both": "base"})]
    disk = [code("a", "x", 0, metadata={"tags": 1, "k": "disk", "new": True, "both": "disk"})]
    live = [code("a", "x", 0, metadata={"tags": 2, "k": "base", "both": "live"})]
    merge = merge_notebook(base, disk, live, nothing_saved())
    # disk's keys where live kept the base value; "both" changed live too: live's stays
    assert sets_of(merge, "a")["metadata"] == {"k": "disk", "new": True}


def test_a_cell_deleted_on_disk_is_deleted_unless_live_edited_it():
    base = [code("a", "x", 0), code("b", "y", 1), code("c", "z", 2)]
    disk = [code("c", "z", 0)]
    live = [code("a", "x", 0), code("b", "y edited live", 1), code("c", "z", 2)]
    merge = merge_notebook(base, disk, live, nothing_saved())
    assert merge.deletes == [{"type": "cell", "id": "a"}]


def test_a_cell_added_on_disk_is_added_after_its_disk_predecessor_with_its_outputs():
    base = [code("a", "x", 0), code("b", "y", 1)]
    disk = [code("a", "x", 0), code("new", "n", 1, output={"0": STREAM}), code("b", "y", 2)]
    live = [code("a", "x", 0), code("b", "y", 1)]
    merge = merge_notebook(base, disk, live, nothing_saved())
    added = sets_of(merge, "new")
    assert added["input"] == "n" and "output" not in added
    assert merge.outputs["new"] == [STREAM]
    assert sets_of(merge, "a").get("pos", 0.0) < added["pos"] < sets_of(merge, "b")["pos"]


def test_a_cell_deleted_live_stays_deleted():
    base = [code("a", "x", 0), code("b", "y", 1)]
    disk = [code("a", "x", 0), code("b", "y changed on disk", 1)]
    live = [code("a", "x", 0)]
    merge = merge_notebook(base, disk, live, nothing_saved())
    assert sets_of(merge, "b") == {}


def test_a_new_order_on_disk_is_taken_when_live_kept_the_base_order():
    base = [code("a", "x", 0), code("b", "y", 1), code("c", "z", 2)]
    disk = [code("c", "z", 0), code("a", "x", 1), code("b", "y", 2)]
    merge = merge_notebook(base, disk, base, nothing_saved())
    pos = {cid: sets_of(merge, cid).get("pos") for cid in "abc"}
    assert pos == {"c": 0.0, "a": 1.0, "b": 2.0}


def test_live_order_wins_when_both_reordered():
    base = [code("a", "x", 0), code("b", "y", 1), code("c", "z", 2)]
    disk = [code("c", "z", 0), code("a", "x", 1), code("b", "y", 2)]
    live = [code("b", "y", 0), code("a", "x", 1), code("c", "z", 2)]
    merge = merge_notebook(base, disk, live, nothing_saved())
    assert all("pos" not in record for record in merge.sets)  # live's positions stay


# -- outputs --------------------------------------------------------------------------------


def test_outputs_this_server_wrote_are_not_taken_back_from_disk():
    base = [code("a", "x", 0, output={"0": STREAM})]
    disk = [code("a", "x", 0, output={"0": STREAM})]
    merge = merge_notebook(base, disk, base, saved_outputs(a=[STREAM]))
    assert merge.outputs == {}


def test_outputs_changed_on_disk_are_returned_apart_when_live_did_not_run_the_cell():
    other = {**STREAM, "text": "2\n"}
    base = [code("a", "x", 0, output={"0": STREAM}), code("b", "y", 1, output={"0": STREAM})]
    disk = [code("a", "x", 0, output={"0": other}), code("b", "y", 1, output={"0": other})]
    live = [code("a", "x", 0, output={"0": STREAM}), code("b", "y", 1, output={"0": other})]
    saved = saved_outputs(a=[STREAM], b=[STREAM])
    merge = merge_notebook(base, disk, live, saved)
    assert merge.outputs == {"a": [other]}  # b ran live since: its outputs stay
    assert all("output" not in record for record in merge.sets)


def test_digest_ignores_key_order_and_integral_floats():
    assert digest({"a": 1, "b": [2.0]}) == digest({"b": [2], "a": 1.0})
    assert digest({"a": 1}) != digest({"a": 1.5})


def test_a_long_text_is_digested_a_piece_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # json's encoder escapes a whole string in one C call that holds the GIL: a flood's output
    # digested in a worker thread stalled the event loop for as long
    encoded: list[int] = []
    real = ipynb_text._encode_str

    def encode(text: str) -> str:
        encoded.append(len(text))
        return real(text)

    monkeypatch.setattr(ipynb_text, "_encode_str", encode)
    printed = "".join(f"{i}\n" for i in range(3 * ipynb_text.PIECE))
    image = "iVBORw0KGgo" * ipynb_text.PIECE
    outputs = [{"output_type": "stream", "text": printed}, {"data": {"image/png": image}}]
    assert digest(outputs) != digest([{**outputs[0], "text": printed + "x"}, outputs[1]])
    assert sum(encoded) >= 2 * (len(printed) + len(image)), "the texts were not encoded here"
    assert max(encoded) <= ipynb_text.PIECE
