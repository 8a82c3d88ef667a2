"""``observe_deep_raw``: pycrdt's extension events, what the observer raises raised when the
transaction ends (as pycrdt does for the observers it wraps), the transaction's changes made."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pycrdt import Doc, Map

from jupyter_cocalc_sync.sync.ytypes import RawEvent, is_map_event, observe_deep_raw


def test_a_raw_observer_sees_the_transactions_changes_once() -> None:
    doc: Doc[Map[object]] = Doc()
    records = doc.get("records", type=Map)
    batches: list[list[str]] = []

    def observe(events: Sequence[RawEvent]) -> None:
        batches.append(sorted(key for e in events if is_map_event(e) for key in e.keys))

    subscription = observe_deep_raw(records, observe)
    with doc.transaction():
        records["a"] = 1
        records["b"] = 2
    subscription.drop()
    records["c"] = 3
    assert batches == [["a", "b"]]


def test_an_observers_error_is_raised_when_the_transaction_ends() -> None:
    doc: Doc[Map[object]] = Doc()
    records = doc.get("records", type=Map)

    def observe(events: Sequence[RawEvent]) -> None:
        raise ValueError("a bug of the observer")

    subscription = observe_deep_raw(records, observe)
    with pytest.raises(ExceptionGroup) as raised, doc.transaction():
        records["a"] = 1
        records["b"] = 2
    subscription.drop()
    assert [type(e) for e in raised.value.exceptions] == [ValueError]
    assert records.to_py() == {"a": 1, "b": 2}
