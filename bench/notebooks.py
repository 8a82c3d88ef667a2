"""Generated notebooks, and waiting for a server to save one."""

from __future__ import annotations

import asyncio
import base64
import random
import string
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat


class TextSource:
    """Deterministic, varied text of a given size (lines of ~80 characters)."""

    def __init__(self, seed: int = 0, pool_size: int = 2000) -> None:
        self.rng = random.Random(seed)
        letters = string.ascii_lowercase
        words = ["".join(self.rng.choices(letters, k=self.rng.randint(2, 9))) for _ in range(500)]
        self.lines = [" ".join(self.rng.choices(words, k=12)) + f" {i}\n" for i in range(pool_size)]

    def text(self, size: int) -> str:
        average = sum(len(line) for line in self.lines[:100]) / 100
        chunk = "".join(self.rng.choices(self.lines, k=int(size * 1.2 / average) + 1))
        return chunk[:size]

    def base64_png(self, encoded_size: int) -> str:
        """A base64 string of ~``encoded_size`` characters that starts like a PNG."""
        raw = b"\x89PNG\r\n\x1a\n" + self.rng.randbytes(encoded_size * 3 // 4 - 8)
        return base64.b64encode(raw).decode("ascii")


def notebook_with_outputs(
    n_cells: int, outputs: Callable[[int], list[dict[str, Any]]]
) -> nbformat.NotebookNode:
    """An nbformat 4.5 notebook of ``n_cells`` code cells, cell ``i`` having ``outputs(i)``."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    for i in range(n_cells):
        cell = nbformat.v4.new_code_cell(
            f"# cell {i}\nresult_{i} = compute({i})\nprint(result_{i})",
            id=f"cell-{i}",
            execution_count=i + 1,
        )
        cell.outputs = [nbformat.from_dict(o) for o in outputs(i)]
        nb.cells.append(cell)
    return nb


def stream_output(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


def display_output(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def text_notebook(n_cells: int, total_output_bytes: int, seed: int = 1) -> str:
    """ipynb text: ``n_cells`` cells with ``total_output_bytes`` of stream output in all."""
    source = TextSource(seed)
    per_cell = total_output_bytes // n_cells
    nb = notebook_with_outputs(n_cells, lambda i: [stream_output(source.text(per_cell))])
    return nbformat.writes(nb)


def mixed_notebook(n_cells: int = 1000, text_bytes: int = 15_000, png_bytes: int = 30_000) -> str:
    """ipynb text: ``n_cells`` code cells whose outputs are, a third each, ``text_bytes`` of
    stream text, ``text_bytes`` of HTML, and a base64 PNG of ``png_bytes`` characters (the
    defaults: ~20 MB of outputs)."""
    source = TextSource(seed=7)

    def outputs(i: int) -> list[dict[str, Any]]:
        kind = i % 3
        if kind == 0:
            return [stream_output(source.text(text_bytes))]
        if kind == 1:
            html = "<pre>" + source.text(text_bytes) + "</pre>"
            return [display_output({"text/html": html, "text/plain": "<HTML>"})]
        png = source.base64_png(png_bytes)
        return [display_output({"image/png": png, "text/plain": "<Figure>"})]

    return nbformat.writes(notebook_with_outputs(n_cells, outputs))


def small_notebook(n_cells: int = 5) -> str:
    nb = notebook_with_outputs(n_cells, lambda i: [stream_output(f"{i}\n")])
    return nbformat.writes(nb)


def code_notebook(cells: Sequence[tuple[str, str]]) -> str:
    """ipynb text of code cells ``(id, source)``, without outputs."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    nb.cells = [nbformat.v4.new_code_cell(source, id=cell_id) for cell_id, source in cells]
    return nbformat.writes(nb)


async def wait_saved(
    path: Path,
    check: Callable[[nbformat.NotebookNode], bool],
    *,
    since: float,
    quiet: float = 1.5,
    timeout: float = 120,
) -> tuple[nbformat.NotebookNode, float]:
    """Wait until the server has saved ``path`` after ``since`` (an mtime) with content that
    passes ``check``, and left it alone for ``quiet`` seconds; the notebook and the time
    (``perf_counter``) the file was first seen in that state."""
    deadline = time.monotonic() + timeout
    seen: tuple[float, float] | None = None  # (mtime, perf_counter when seen)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # the server process writes the file: nothing to await
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if mtime <= since:
            continue
        if seen is None or seen[0] != mtime:
            seen = (mtime, time.perf_counter())
            continue
        if time.perf_counter() - seen[1] < quiet:
            continue
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception:
            seen = None  # written while read
            continue
        if check(notebook):
            return notebook, seen[1]
    raise TimeoutError(f"{path} was not saved as expected within {timeout} s")
