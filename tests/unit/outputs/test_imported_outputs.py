"""Outputs read from a file: their size against the limits is measured as ``json`` counts it."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_cocalc_sync.outputs import imported
from jupyter_cocalc_sync.outputs.handler import OutputLimits, dumps
from jupyter_cocalc_sync.outputs.imported import MAX_ESCAPED, FileOutputImporter, _json_length

ESCAPED = 'quotes " backslash \\ newline \n tab \t control \x01 \x1f del \x7f ü € \u2028 𝄞'
VALUES: list[dict[str, Any]] = [
    {"0": {"output_type": "stream", "name": "stdout", "text": ESCAPED * 50}},
    {"0": {"output_type": "execute_result", "data": {"text/plain": "2"}, "execution_count": 3}},
    {"0": {"output_type": "display_data", "data": {"application/json": [1, 2.5, None, True]}}},
    {"0": {"output_type": "display_data", "data": {"application/json": {"big": 2**70}}}},
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("limit", [0, 10**9])
def test_the_length_is_json_s_character_count(value: dict[str, Any], limit: int) -> None:
    length = _json_length(value, limit)
    exact = len(dumps(value))
    assert length == exact if length > limit else length >= exact


async def test_outputs_just_past_the_limit_in_characters_are_truncated() -> None:
    text = "ü" * 1000  # 1000 characters, 2000 UTF-8 bytes
    outputs = [{"output_type": "stream", "name": "stdout", "text": text}]
    size = len(dumps({"0": outputs[0]}))
    within = FileOutputImporter(OutputLimits(max_length=size), None, None)
    assert await within.import_outputs("doc", "c", outputs, {}) == {"0": outputs[0]}
    past = FileOutputImporter(OutputLimits(max_length=size - 1), None, None)
    assert await past.import_outputs("doc", "c", outputs, {}) != {"0": outputs[0]}


@pytest.mark.parametrize("text", ["\x01", "\n", '"', "a", "ü", "𝄞"])
async def test_outputs_escaped_to_the_most_characters_are_still_measured_right(text: str) -> None:
    """Each character at its most escaped: the bound that skips the measure is never below
    the JSON's length, so what is past the limit is still cut."""
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": text * 1000},
        {"output_type": "display_data", "data": {"text/plain": text * 500}, "metadata": {}},
    ]
    size = len(dumps({str(i): o for i, o in enumerate(outputs)}))
    assert size <= 1500 * MAX_ESCAPED + 200
    for limit, kept in [(size, True), (size - 1, False)]:
        importer = FileOutputImporter(OutputLimits(max_length=limit), None, None)
        result = await importer.import_outputs("doc", "c", outputs, {})
        assert (result == {"0": outputs[0], "1": outputs[1]}) == kept, limit


async def test_outputs_far_within_the_limit_are_not_serialized_to_be_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A big notebook's many mid-sized outputs: six characters a character is within the
    limit, so their JSON is not made only to be measured."""
    measured: list[int] = []

    def measuring(value: dict[str, Any], limit: int) -> int:
        length = _json_length(value, limit)
        measured.append(length)
        return length

    monkeypatch.setattr(imported, "_json_length", measuring)
    text = "x" * 30_000
    outputs = [{"output_type": "stream", "name": "stdout", "text": text}]
    importer = FileOutputImporter(OutputLimits(max_length=250_000), None, None)
    assert await importer.import_outputs("doc", "c", outputs, {}) == {"0": outputs[0]}
    assert all(length < 1000 for length in measured), measured
