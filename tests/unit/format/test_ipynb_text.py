"""``indented_json`` writes what ``json.dumps`` writes with nbformat's settings, byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_cocalc_sync.format.ipynb_text import indented_json


def nbformat_dumps(value: Any) -> str:
    """What ``nbformat.writes`` asks of ``json.dumps``."""
    return json.dumps(value, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.text(max_size=20), max_size=6),  # the lines of a text
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_indented_json_is_json_dumps_with_nbformat_settings(value: Any) -> None:
    assert indented_json(value) == nbformat_dumps(value)


@pytest.mark.parametrize(
    "value", [{1: "a", 2.5: "b"}, {True: 1}, {None: [1]}, ["a", 1, "b"], [["x"], "y"]]
)
def test_non_string_keys_and_mixed_lists_as_json_writes_them(value: Any) -> None:
    assert indented_json(value) == nbformat_dumps(value)


@pytest.mark.parametrize("value", [{"a": object()}, [b"bytes"], {(1, 2): "tuple key"}])
def test_what_json_cannot_write_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        nbformat_dumps(value)
    with pytest.raises(TypeError):
        indented_json(value)
