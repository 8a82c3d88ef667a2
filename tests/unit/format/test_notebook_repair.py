"""Invalid but recoverable notebooks are repaired like nbformat's upgrade, and say so."""

from __future__ import annotations

import copy
import json

import nbformat
import pytest

from jupyter_cocalc_sync.format.ipynb import notebook_to_records, records_to_notebook
from jupyter_cocalc_sync.format.merge import merge_text
from jupyter_cocalc_sync.format.repair import REPAIRED_KEY, load_notebook

VALID = nbformat.v4.new_code_cell(
    "x = 1", id="valid", outputs=[nbformat.v4.new_output("stream", text="ok\n")]
)


def notebook(*cells, **metadata) -> dict:
    """A v4.5 notebook: the valid cell, then ``cells`` as given (not validated)."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata,
        "cells": [json.loads(json.dumps(VALID)), *copy.deepcopy(list(cells))],
    }


def raw_cell(**fields) -> dict:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "source": "", **fields}


CASES = {
    "heading": (
        notebook({"cell_type": "heading", "level": 3, "metadata": {}, "source": "Title\nmore"}),
        "heading",
        lambda nb: nb["cells"][1]["source"] == "### Title more",
    ),
    "missing source": (
        notebook({"cell_type": "markdown", "metadata": {}, "id": "m"}),
        "no source",
        lambda nb: nb["cells"][1]["source"] == "",
    ),
    "bad id": (
        notebook(raw_cell(id="not valid!", source="y")),
        "not valid!",
        lambda nb: nb["cells"][1]["source"] == "y",
    ),
    "duplicate id": (
        notebook(raw_cell(id="valid", source="twin")),
        "duplicate id",
        lambda nb: nb["cells"][1]["id"] != "valid",
    ),
    "unknown output": (
        notebook(raw_cell(id="o", outputs=[{"output_type": "hologram", "depth": 3}])),
        "hologram",
        lambda nb: nb["cells"][1]["outputs"][0]["metadata"][REPAIRED_KEY]["output"]["depth"] == 3,
    ),
    "nameless kernelspec": (
        notebook(kernelspec={"display_name": "Mystery"}),
        "kernelspec has no name",
        lambda nb: nb["metadata"][REPAIRED_KEY]["kernelspec"] == {"display_name": "Mystery"},
    ),
    "unknown cell type": (
        notebook({"cell_type": "pie", "metadata": {}, "source": "slice", "id": "p"}),
        "unknown cell type",
        lambda nb: nb["cells"][1]["metadata"][REPAIRED_KEY]["cell_type"] == "pie",
    ),
    "cell not an object": (
        notebook(3),
        "not an object",
        lambda nb: nb["cells"][1]["source"] == "3",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_recoverable_notebook_is_repaired_reported_and_exports_valid(case):
    raw, problem, repaired = CASES[case]
    loaded = load_notebook(json.dumps(raw))
    assert any(problem in w for w in loaded.warnings), loaded.warnings
    assert repaired(loaded.notebook)
    exported = records_to_notebook(notebook_to_records(loaded.notebook))
    nbformat.validate(nbformat.from_dict(exported))
    assert len(exported["cells"]) == len(raw["cells"])  # nothing dropped
    kept = exported["cells"][0]
    assert (kept["id"], kept["source"], kept["outputs"]) == ("valid", "x = 1", VALID["outputs"])


def test_a_valid_notebook_has_no_warnings():
    assert load_notebook(json.dumps(notebook())).warnings == []


def test_text_merges_take_disk_lines_live_did_not_touch():
    base = "a\nb\nc\nd\n"
    live = "a (live)\nb\nc\nd\n"
    disk = "a\nb\nc\nd (disk)\n"
    assert merge_text(base, disk, live) == "a (live)\nb\nc\nd (disk)\n"
    # both changed the same line: live wins, nothing is interleaved
    assert merge_text(base, "a (disk)\nb\nc\nd\n", live) == live


# Found by the imported-file fuzzer (tests/stress/test_fuzz.py): each opened as valid nbformat.
SCHEMA_CASES = {
    "integer beyond 2^53": (
        '{"cells": [], "nbformat": 4, "metadata": {"big": 9007199254740993}}',
        "beyond ±2^53",
    ),
    "NaN": ('{"cells": [], "nbformat": 4, "metadata": {"x": NaN}}', "NaN/Infinity"),
    "null kernelspec": ('{"cells": [], "nbformat": 4, "metadata": {"kernelspec": null}}', "kernel"),
    "null language_info": (
        '{"cells": [], "nbformat": 4, "metadata": {"language_info": null}}',
        "metadata.language_info",
    ),
    "null in a bundle": (
        '{"cells": [{"cell_type": "markdown", "id": "a", "source": "",'
        ' "attachments": {"i": {"text/plain": [null]}}}]}',
        None,
    ),
    "non-text bundle value": (
        '{"cells": [{"cell_type": "markdown", "id": "a", "source": "",'
        ' "attachments": {"i": {"image/png": 3}}}]}',
        "not text",
    ),
    "negative execution count": (
        '{"cells": [{"cell_type": "code", "id": "a", "source": "", "execution_count": -1}]}',
        "execution_count",
    ),
    "bad cell metadata": (
        '{"cells": [{"cell_type": "code", "id": "a", "source": "",'
        ' "metadata": {"collapsed": "yes"}}]}',
        "metadata.collapsed",
    ),
    "error output without a traceback list": (
        '{"cells": [{"cell_type": "code", "id": "a", "source": "", "outputs":'
        ' [{"output_type": "error", "ename": 1, "evalue": "", "traceback": 2}]}]}',
        "outputs[0]",
    ),
}


@pytest.mark.parametrize("case", SCHEMA_CASES)
def test_files_that_break_the_schema_open_as_valid_notebooks(case):
    text, warning = SCHEMA_CASES[case]
    loaded = load_notebook(text)
    exported = records_to_notebook(notebook_to_records(loaded.notebook))
    nbformat.validate(nbformat.from_dict(exported))
    if warning:
        assert any(warning in w for w in loaded.warnings), loaded.warnings
