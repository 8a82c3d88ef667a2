"""A checked record read from its JSON is the record read entry by entry."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from jupyter_cocalc_sync.sync.values import (
    MAX_SAFE_INTEGER,
    check_json,
    checked_from_crdt,
    checked_map_from_crdt,
    from_crdt,
    map_from_crdt,
)

# what ``check_json`` lets into a table: finite numbers, safe integers
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([2.0**53, -(2.0**53), 1e16, 2.0**60, 1e21, 2.5, 0.1, -0.0, 5e-324]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def shared(value: Any, depth: int) -> Any:
    """``value`` with its containers as shared types, as the table nests them."""
    if depth and isinstance(value, dict):
        return Map({k: shared(v, depth - 1) for k, v in value.items()})
    if depth and isinstance(value, list):
        return Array([shared(v, depth - 1) for v in value])
    if isinstance(value, str) and depth:
        return Text(value)
    return value


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.integers(0, 3))
def test_a_checked_record_reads_the_same_from_its_json(record: dict[str, Any], depth: int):
    check_json(record, "record")
    doc: Doc[Any] = Doc()
    doc["records"] = records = Map()
    records["r"] = Map({k: shared(v, depth) for k, v in record.items()})
    assert typed(checked_map_from_crdt(records["r"])) == typed(map_from_crdt(records["r"]))
    for name in record:  # and each value alone
        field = records["r"][name]
        assert typed(checked_from_crdt(field)) == typed(from_crdt(field))


def typed(value: Any) -> Any:
    """``value`` with the type of every leaf beside it (``1 == 1.0`` is not the same value)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)
