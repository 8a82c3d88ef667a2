"""ipynb import/export: round trips of real and generated notebooks, determinism, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc

from jupyter_cocalc_sync.errors import NotebookFormatError
from jupyter_cocalc_sync.format.ipynb import (
    initial_update,
    notebook_to_records,
    parse_notebook,
    records_to_notebook,
    write_notebook,
)
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import FILE
from jupyter_cocalc_sync.sync.values import from_crdt

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.ipynb")) if CORPUS.is_dir() else []


def roundtrip(text: str) -> str:
    """import → live table (through a Yjs update) → export → ipynb text."""
    db = notebook_syncdb()
    db.apply_update(initial_update(notebook_to_records(parse_notebook(text))), FILE)
    return write_notebook(records_to_notebook(db.get()))


def normalised(nb: dict, ids: list[str] | None = None) -> dict:
    """The normalisations docs/design.md and the ipynb module document, applied to a notebook."""
    nb = json.loads(json.dumps(nb))
    if nb["nbformat"] == 3:
        nb = json.loads(json.dumps(nbformat.reads(json.dumps(nb), as_version=4)))
    node = nbformat.from_dict(nb)
    nbformat.v4.rwbase.strip_transient(nbformat.v4.rwbase.rejoin_lines(node))
    nb = json.loads(json.dumps(node))
    for i, cell in enumerate(nb["cells"]):
        if ids is not None and cell.get("id") not in ids:
            cell["id"] = ids[i]  # missing/invalid/duplicate ids get derived ones
        if isinstance(cell.get("metadata", {}).get("tags"), list):
            cell["metadata"]["tags"] = sorted(set(cell["metadata"]["tags"]))
        for output in cell.get("outputs", []):
            output.pop("transient", None)
    nb["nbformat_minor"] = 5
    return from_crdt(nb)


def assert_roundtrip(original_text: str) -> None:
    original = json.loads(original_text)
    exported_text = roundtrip(original_text)
    exported = json.loads(exported_text)
    assert exported["nbformat"] == 4 and exported["nbformat_minor"] == 5
    ids = [c["id"] for c in exported["cells"]]
    assert len(set(ids)) == len(ids)
    expected = normalised(original, ids)
    got = normalised(exported, ids)
    assert got["metadata"] == expected["metadata"]
    assert len(got["cells"]) == len(expected["cells"])
    for mine, theirs in zip(got["cells"], expected["cells"], strict=True):
        assert mine == theirs
    try:
        nbformat.validate(nbformat.reads(original_text, as_version=4))
        valid_before = True
    except Exception:
        valid_before = False
    if valid_before:
        nbformat.validate(nbformat.reads(exported_text, as_version=4))


def test_corpus_is_present_or_skipped_with_a_message():
    if not CORPUS_FILES:
        pytest.skip(f"no corpus at {CORPUS}: round trips of real notebooks skipped")
    assert len(CORPUS_FILES) > 10


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_notebook_round_trips(path):
    assert_roundtrip(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_import_is_deterministic(path):
    """The same file gives the same Yjs items (ids and content) in every process.

    The bytes of two imports can differ only in the order of keys inside JSON objects, which
    yrs serialises in hash-map order; every Yjs item — client 0, same clocks, same content —
    is identical, so merging one import into the other adds and duplicates nothing.
    """
    text = path.read_text(encoding="utf-8")
    first = initial_update(notebook_to_records(parse_notebook(text)))
    second = initial_update(notebook_to_records(parse_notebook(text)))
    a, b = Doc(), Doc()
    a.apply_update(first)
    b.apply_update(second)
    assert a.get_state() == b.get_state()
    before = a.get_update()
    a.apply_update(second)  # a reconnecting client merging the other import
    assert a.get_state() == b.get_state()
    assert len(a.get_update()) == len(before)
    db_a, db_b = notebook_syncdb(doc=a), notebook_syncdb(doc=b)
    key = lambda r: (r["type"], r["id"])  # noqa: E731
    assert sorted(db_a.get(), key=key) == sorted(db_b.get(), key=key)
    assert len(db_a.get({"type": "cell"})) == len(parse_notebook(text)["cells"])


# -- generated notebooks --------------------------------------------------------------------

unicode_text = st.text(
    alphabet=st.sampled_from(list("abc \n\t\r\\\"'😀日本é\u0301שלום👩‍👩‍👧{}[]")), max_size=40
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), unicode_text)
metadata = st.dictionaries(
    st.sampled_from(["a", "b", "custom", "ext"]),
    st.one_of(json_scalars, st.dictionaries(st.sampled_from(["x", "y"]), json_scalars)),
    max_size=3,
)
output = st.one_of(
    st.builds(
        lambda name, text: nbformat.v4.new_output("stream", name=name, text=text),
        st.sampled_from(["stdout", "stderr"]),
        unicode_text,
    ),
    st.builds(
        lambda text, count: nbformat.v4.new_output(
            "execute_result", data={"text/plain": text}, execution_count=count
        ),
        unicode_text,
        st.integers(1, 99),
    ),
    st.builds(
        lambda html, meta: nbformat.v4.new_output(
            "display_data", data={"text/html": html, "text/plain": "x"}, metadata=meta
        ),
        unicode_text,
        metadata,
    ),
    st.builds(
        lambda name, value: nbformat.v4.new_output(
            "error", ename=name, evalue=value, traceback=[value, name]
        ),
        unicode_text,
        unicode_text,
    ),
)


@st.composite
def notebooks(draw):
    cells = []
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["code", "markdown", "raw"]))
        source = draw(unicode_text)
        meta = draw(metadata)
        if draw(st.booleans()):
            meta["tags"] = draw(
                st.lists(st.sampled_from(["t1", "t2", "raises-exception"]), unique=True)
            )
        if kind == "code":
            cell = nbformat.v4.new_code_cell(
                source,
                metadata=meta,
                outputs=draw(st.lists(output, max_size=3)),
                execution_count=draw(st.one_of(st.none(), st.integers(1, 500))),
            )
        elif kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source, metadata=meta)
        else:
            cell = nbformat.v4.new_raw_cell(source, metadata=meta)
        cell["id"] = f"cell-{i}"
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=draw(metadata))
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return nb


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notebooks())
def test_generated_notebooks_round_trip(nb):
    assert_roundtrip(nbformat.writes(nb))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notebooks(), unicode_text)
def test_notebooks_are_written_byte_for_byte_as_nbformat_writes_them(nb, text):
    nb["metadata"].update(orig_nbformat=3, signature="sha256:x")
    bundle = {"image/svg+xml": text, "application/javascript": text, "image/png": text}
    nb["cells"].append(nbformat.v4.new_markdown_cell(text, attachments={"a.svg": bundle}))
    nb["cells"].append(nbformat.v4.new_code_cell(text, metadata={"trusted": True}))
    nb["cells"][-1]["outputs"].append(nbformat.v4.new_output("display_data", data=bundle))
    plain = json.loads(json.dumps(nb))  # the plain dicts export gives
    assert write_notebook(plain) == nbformat.writes(nbformat.from_dict(plain))
    assert plain == json.loads(json.dumps(nb))  # (not changed in place)


# -- bad files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "top level must be an object"),
        ('{"nbformat": 2, "cells": []}', "nbformat 2"),
        ('{"nbformat": 7, "cells": []}', "unsupported nbformat 7"),
        ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "cells"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
    ],
)
def test_files_that_are_not_notebooks_raise_a_clear_error(content, message):
    with pytest.raises(NotebookFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_notebook(content)


def test_missing_duplicate_and_invalid_ids_are_repaired_deterministically():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("a"),
            nbformat.v4.new_code_cell("b"),
            nbformat.v4.new_markdown_cell("c"),
        ]
    )
    nb["cells"][0]["id"] = "same"
    nb["cells"][1]["id"] = "same"
    nb["cells"][2]["id"] = "not valid!"
    text = json.dumps(nb)
    first = [c["id"] for c in parse_notebook(text)["cells"]]
    assert first == [c["id"] for c in parse_notebook(text)["cells"]]
    assert first[0] == "same" and len(set(first)) == 3
    exported = records_to_notebook(notebook_to_records(parse_notebook(text)))
    nbformat.validate(nbformat.from_dict(exported))


def test_a_cell_whose_type_and_input_a_peer_set_to_null_exports_as_a_valid_code_cell():
    # (a fuzzed room frame did it; nbformat's validator then crashed on the save)
    from jupyter_cocalc_sync.format.ipynb import export_cell

    cell = export_cell({"type": "cell", "id": "c", "cell_type": None, "input": None})
    assert cell["cell_type"] == "code"
    assert cell["source"] == ""
    nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.from_dict(cell)]))


# every field of a cell record but its id: a peer's raw update may set any of them to null
CELL_FIELDS_A_PEER_MAY_NULL = (
    "input", "pos", "exec_count", "start", "end", "state", "collapsed", "scrolled", "tags",
    "metadata", "attachments", "output",
)  # fmt: skip


@pytest.mark.parametrize(
    "cell_type, field", [(t, f) for t in ("code", "markdown") for f in CELL_FIELDS_A_PEER_MAY_NULL]
)
def test_every_field_a_peer_set_to_null_exports_as_unset(cell_type: str, field: str):
    from jupyter_cocalc_sync.format.ipynb import export_cell

    record = {"type": "cell", "id": "c", "cell_type": cell_type, "input": "x", field: None}
    cell = export_cell(record)
    nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.from_dict(cell)]))
