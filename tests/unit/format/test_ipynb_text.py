"""``indented_json`` writes what ``json.dumps`` writes with nbformat's settings, byte for byte;
``write_nbformat4`` what ``nbformat.writes`` writes, whole or a piece at a time."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_cocalc_sync.format import ipynb_text
from jupyter_cocalc_sync.format.ipynb_text import (
    indented_json,
    write_json_to,
    write_nbformat4,
    write_nbformat4_to,
)
from jupyter_cocalc_sync.sync.table import json_copy


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


@contextlib.contextmanager
def small_pieces() -> Iterator[None]:
    """Texts split, lists encoded and the file written a few characters at a time (the long
    texts' paths, on short ones)."""
    with mock.patch.object(ipynb_text, "PIECE", 8), mock.patch.object(ipynb_text, "LINES", 2):
        yield


def streamed(write: Any, value: Any) -> str:
    file = io.StringIO()
    write(value, file)
    return file.getvalue()


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_in_small_pieces_the_text_is_the_same(value: Any) -> None:
    expected = nbformat_dumps(value)
    with small_pieces():
        assert indented_json(value) == expected
        assert streamed(write_json_to, value) == expected


#: texts with every line end ``str.splitlines`` knows, quotes and escapes
texts = st.text(alphabet=st.sampled_from('ab\n\r\x0b\x0c\x1c\x85\u2028é"\\\t'), max_size=40)


@settings(max_examples=100, deadline=None)
@given(source=texts, streams=st.lists(texts, max_size=3), html=texts)
def test_a_notebooks_texts_in_small_pieces_are_written_as_nbformat_writes_them(
    source: str, streams: list[str], html: str
) -> None:
    outputs: list[dict[str, Any]] = [
        {"output_type": "stream", "name": "stdout", "text": text} for text in streams
    ]
    outputs.append(
        {
            "output_type": "display_data",
            "data": {"text/html": html, "image/png": "iVBORw0KGgo" * 5},
            "metadata": {},
        }
    )
    cell = {
        "id": "c",
        "cell_type": "code",
        "source": source,
        "metadata": {"trusted": True},
        "execution_count": 1,
        "outputs": outputs,
    }
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}
    expected = nbformat.writes(nbformat.from_dict(json.loads(json.dumps(nb))))
    with small_pieces():
        assert write_nbformat4(nb) == expected
        assert streamed(write_nbformat4_to, nb) == expected


#: texts mostly of characters JSON writes as themselves (written whole, their newlines made the
#: list's line breaks), sometimes with one it escapes or another line end (written line by line)
plain_texts = st.text(alphabet=st.sampled_from("ab <>/=\n\n\n" + '\t"\\\r\x0c\x7fé'), max_size=60)


def notebook_of_texts(source: str, streams: list[str], html: str) -> dict[str, Any]:
    outputs: list[dict[str, Any]] = [
        {"output_type": "stream", "name": "stdout", "text": text} for text in streams
    ]
    outputs.append({"output_type": "display_data", "data": {"text/html": html}, "metadata": {}})
    cell = {
        "id": "c",
        "cell_type": "code",
        "source": source,
        "metadata": {},
        "execution_count": 1,
        "outputs": outputs,
    }
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "\n\n",
        "a",
        "a\n",
        "a\nb",
        "a\n\nb\n",
        "<b>\n</b>",
        "a\tb\n",
        'say "hi"\n',
        "x\r\ny\n",
        "back\\nslash\n",
        "\x7f\n",
    ],
)
def test_a_text_is_written_as_its_lines(text: str) -> None:
    nb = notebook_of_texts(text, [text], text)
    assert write_nbformat4(nb) == nbformat.writes(nbformat.from_dict(json_copy(nb)))


@settings(max_examples=150, deadline=None)
@given(source=plain_texts, streams=st.lists(plain_texts, max_size=3), html=plain_texts)
def test_texts_written_whole_or_line_by_line_are_what_nbformat_writes(
    source: str, streams: list[str], html: str
) -> None:
    nb = notebook_of_texts(source, streams, html)
    expected = nbformat.writes(nbformat.from_dict(json_copy(nb)))
    assert write_nbformat4(nb) == expected
    with small_pieces():
        assert write_nbformat4(nb) == expected
        assert streamed(write_nbformat4_to, nb) == expected
