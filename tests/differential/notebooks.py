"""The notebook every sequence starts from, and the values operations write."""

from __future__ import annotations

import base64
from typing import Any

#: a 1×1 PNG: small enough to stay inline on both servers (ours keeps larger images as blobs)
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc00000000301010018dd8d"
        "b00000000049454e44ae426082"
    )
).decode()

STREAM = {"output_type": "stream", "name": "stdout", "text": "1\n2\n"}
STDERR = {"output_type": "stream", "name": "stderr", "text": "warn: é 中 🎉\n"}
RESULT = {
    "output_type": "execute_result",
    "execution_count": 3,
    "data": {"text/plain": "42", "text/html": "<b>42</b>"},
    "metadata": {},
}
IMAGE = {
    "output_type": "display_data",
    "data": {"image/png": PNG, "text/plain": "<Figure>"},
    "metadata": {"image/png": {"width": 1, "height": 1}},
}
JSON_DATA = {
    "output_type": "display_data",
    "data": {"application/json": {"a": [1, 2.5, None, {"b": "c"}], "n": 0}},
    "metadata": {},
}
ERROR = {
    "output_type": "error",
    "ename": "ValueError",
    "evalue": "bad",
    "traceback": ["Traceback …", "ValueError: bad"],
}
OUTPUTS = [STREAM, STDERR, RESULT, IMAGE, JSON_DATA, ERROR]

ATTACHMENT = {"image.png": {"image/png": PNG}}
OTHER_ATTACHMENT = {"other.png": {"image/png": PNG}, "notes.txt": {"text/plain": "hi"}}


def initial_notebook() -> dict[str, Any]:
    """Code cells with every kind of output, markdown with an attachment, a raw cell, cell
    and notebook metadata of every shape."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "version": "3.11.2"},
            "custom": {"nested": {"deep": [1, 2]}, "flag": True},
        },
        "cells": [
            {
                "id": "intro",
                "cell_type": "markdown",
                "metadata": {"tags": ["intro"]},
                "source": "# Title\n\nSome *text*: é, 中文, 🎉.\n![img](attachment:image.png)",
                "attachments": ATTACHMENT,
            },
            {
                "id": "code-a",
                "cell_type": "code",
                "metadata": {"collapsed": False, "scrolled": True, "custom": {"x": 1}},
                "source": "print(1)\nprint(2)",
                "execution_count": 1,
                "outputs": [STREAM, STDERR],
            },
            {
                "id": "code-b",
                "cell_type": "code",
                "metadata": {"tags": ["b", "a"], "jupyter": {"source_hidden": True}},
                "source": "x = 42\nx",
                "execution_count": 3,
                "outputs": [RESULT, IMAGE, JSON_DATA],
            },
            {
                "id": "raw-c",
                "cell_type": "raw",
                "metadata": {"format": "text/plain"},
                "source": "raw text\nline 2",
            },
            {
                "id": "code-d",
                "cell_type": "code",
                "metadata": {},
                "source": "",
                "execution_count": None,
                "outputs": [],
            },
            {
                "id": "code-e",
                "cell_type": "code",
                "metadata": {"execution": {"iopub.execute_input": "2024-01-01T00:00:00Z"}},
                "source": "raise ValueError('bad')",
                "execution_count": 2,
                "outputs": [ERROR],
            },
        ],
    }
