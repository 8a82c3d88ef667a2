"""Every kind of edit JupyterLab makes to a notebook, done by one user in the stock frontend,
reaches the other user's tab, the server's records, the file and a reloaded tab.

Two users have one notebook open; Alice edits it the way a person does (menus, context menus,
command-mode keys, the property inspector, dropping an image), Bob watches. After each step:
Bob's tab shows the result, ``GET /api/cocalc-sync/notebooks/{path}`` has it, Ctrl+S writes it
to the file, and a client joining the notebook's room then is given it (what a reloaded tab is
built from: what the server keeps); at the end of a scenario (and after an image is dropped)
Bob's tab still shows it after a reload. The server's own autosave is pushed far out, so the
file is what Ctrl+S wrote.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import nbformat
import pytest

pytest.importorskip("playwright")

from browser_support import LabSession, LabUser, browser_marks, wait_for_value
from helpers import Server, read_notebook_file, write_notebook
from lab_servers import LabFolder
from playwright.sync_api import expect

from jupyter_cocalc_sync.format.ipynb import cell_order_key, export_cell

pytestmark = [*browser_marks(timeout=400), pytest.mark.slow]


@pytest.fixture(scope="module")
def lab_config() -> dict[str, Any]:
    """No autosave during a test: the file changes when Alice presses Ctrl+S."""
    return {"CocalcSync": {"autosave_delay": 600.0, "file_poll_interval": 0.2}}


@dataclass
class Cell:
    """One cell as every place that shows it should have it."""

    type: str
    source: str
    outputs: list[str] = field(default_factory=list)  # the text of each (stream) output
    count: int | None = None
    #: but ``trusted``, which the frontend sets and nbformat does not write
    metadata: dict[str, Any] = field(default_factory=dict)
    attachments: dict[str, Any] = field(default_factory=dict)
    #: the width of each image its rendered Markdown shows (only a page shows it)
    images: list[int] = field(default_factory=list, compare=False)

    def shown(self) -> dict[str, Any]:
        """What ``LabUser.cells_shown`` reads for this cell."""
        shown: dict[str, Any] = {"type": self.type, "source": self.source}
        if self.type == "code":
            shown["outputs"] = self.outputs
        elif self.type == "markdown":
            shown["images"] = self.images
        return shown

    @classmethod
    def of(cls, cell: dict[str, Any]) -> Cell:
        """An nbformat cell dict (from the file, or exported from a record)."""
        cell = json.loads(json.dumps(cell))
        return cls(
            cell["cell_type"],
            cell["source"],
            [o.get("text", "") for o in cell.get("outputs", [])],
            cell.get("execution_count"),
            {k: v for k, v in cell["metadata"].items() if k != "trusted"},
            cell.get("attachments") or {},
        )


def code(source: str, *outputs: str, count: int | None = None) -> Cell:
    return Cell("code", source, list(outputs), count)


def code_cell(cell_id: str, source: str, output: str) -> nbformat.NotebookNode:
    """A code cell with one stdout output, as if it had run."""
    cell = nbformat.v4.new_code_cell(source, id=cell_id, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    return cell


def png(width: int, height: int) -> bytes:
    """A red ``width`` × ``height`` PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = (b"\x00" + b"\xff\x00\x00" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class SharedNotebook:
    """One notebook open for Alice (who edits) and Bob (who watches), and the checks of a step."""

    def __init__(self, lab: LabSession, server: LabFolder, name: str) -> None:
        self.server = server
        self.name = name
        self.alice: LabUser = lab.open(name, "alice")
        # only once Alice's kernel is idle, or each of them starts one
        self.bob: LabUser = lab.open(name, "bob")

    def records(self) -> list[dict[str, Any]]:
        """The cell records the server's REST API gives, in notebook order."""
        response = httpx.get(
            self.server.api(f"cocalc-sync/notebooks/{self.server.path(self.name)}"),
            params={"token": self.server.token},
        )
        response.raise_for_status()
        cells = [r for r in response.json()["records"] if r["type"] == "cell"]
        return sorted(cells, key=cell_order_key)

    def on_disk(self) -> list[dict[str, Any]] | None:
        nb = read_notebook_file(self.server.root / self.name)
        return None if nb is None else [dict(cell) for cell in nb.cells]

    def bob_shows_metadata(self, step: str, expected: list[Cell]) -> None:
        """Bob's property inspector shows each cell's metadata (where there is any to see)."""
        for n, cell in enumerate(expected):
            if cell.metadata:
                wait_for_value(
                    lambda n=n: {
                        k: v for k, v in self.bob.cell_metadata_shown(n).items() if k != "trusted"
                    },
                    cell.metadata,
                    f"after {step}: cell {n}'s metadata in Bob's property inspector",
                )

    def joined(self) -> list[dict[str, Any]]:
        """The cells a client joining the notebook's room now is given (a JupyterLab-like
        YNotebook, as a reloaded tab gets them)."""

        async def join() -> list[dict[str, Any]]:
            client = Server(self.server.url, self.server.token)
            try:
                async with client.ynotebook(self.server.path(self.name)) as ynb:
                    cells: list[dict[str, Any]] = ynb.get()["cells"]
                    return cells
            finally:
                await client.aclose()

        # Playwright's event loop is this thread's running loop: the client runs in another
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, join()).result()

    def check(self, step: str, expected: list[Cell], *, reload: bool = False) -> None:
        """Bob's tab, the records, the file (after Ctrl+S) and a client joining show
        ``expected``; with ``reload``, so does Bob's tab after a reload."""
        shown = [cell.shown() for cell in expected]
        self.bob.wait_for_cells(shown)
        self.bob_shows_metadata(step, expected)
        wait_for_value(
            lambda: [Cell.of(export_cell(r)) for r in self.records()],
            expected,
            f"after {step}: the records",
        )
        self.alice.save()
        wait_for_value(
            lambda: [Cell.of(c) for c in self.on_disk() or []],
            expected,
            f"after {step}: the file",
        )
        wait_for_value(
            lambda: [Cell.of(c) for c in self.joined()], expected, f"after {step}: a joiner"
        )
        self.alice.end_undo_step()  # each step is one undo step, as a person's pauses make it
        if reload:
            self.bob.reload()
            self.bob.wait_for_cells(shown)
            self.bob_shows_metadata(f"{step} and a reload", expected)
        for user in (self.alice, self.bob):
            expect(user.dialogs).to_have_count(0)


def test_clearing_outputs(lab, lab_server):
    """Clear Output of one cell, Edit → Clear Outputs of All Cells, and Kernel → Restart
    Kernel and Clear Outputs of All Cells."""
    write_notebook(
        lab_server.root / "outputs.ipynb",
        [code_cell(f"c{i}", f"print({i})", f"{i}\n") for i in (1, 2, 3)],
    )
    nb = SharedNotebook(lab, lab_server, "outputs.ipynb")
    alice = nb.alice
    nb.bob.wait_for_cells([code(f"print({i})", f"{i}\n").shown() for i in (1, 2, 3)])

    alice.cell_context_menu(0, "Clear Cell Output")
    nb.check(
        "Clear Cell Output",
        [code("print(1)"), code("print(2)", "2\n", count=1), code("print(3)", "3\n", count=1)],
    )

    alice.menu("Edit", "Clear Outputs of All Cells")
    nb.check("Clear Outputs of All Cells", [code("print(1)"), code("print(2)"), code("print(3)")])

    alice.run_cell(0)
    alice.run_cell(1)
    ran = [code("print(1)", "1\n"), code("print(2)", "2\n"), code("print(3)")]
    nb.bob.wait_for_cells([cell.shown() for cell in ran])
    alice.menu("Kernel", "Restart Kernel and Clear Outputs of All Cells…")
    alice.accept_dialog("Restart")
    nb.check(
        "Restart Kernel and Clear Outputs",
        [code("print(1)"), code("print(2)"), code("print(3)")],
        reload=True,
    )


def test_changing_the_cells(lab, lab_server):
    """Cell type with M / R / Y, cut and paste (X, V), move down and up (Ctrl+Shift+arrows),
    merge (Shift+M) and split (Ctrl+Shift+-), delete (D D) and undo it (Z, Edit → Undo Cell
    Operation)."""
    write_notebook(
        lab_server.root / "cells.ipynb",
        [
            "a = 1",
            code_cell("b", "print(2)", "2\n"),
            code_cell("c", "print(3)", "3\n"),
            "d = 4\ne = 5",
        ],
    )
    nb = SharedNotebook(lab, lab_server, "cells.ipynb")
    alice = nb.alice
    a, b, de = code("a = 1"), code("print(2)", "2\n", count=1), code("d = 4\ne = 5")

    alice.press_on_cell(2, "m")
    nb.check("M", [a, b, Cell("markdown", "print(3)"), de])  # the output is gone with the type
    alice.press_on_cell(2, "r")
    nb.check("R", [a, b, Cell("raw", "print(3)"), de])
    alice.press_on_cell(2, "y")
    c = code("print(3)")
    nb.check("Y", [a, b, c, de])

    alice.press_on_cell(1, "x")
    nb.check("X", [a, c, de])
    alice.press_on_cell(2, "v")
    nb.check("V", [a, c, de, b])  # pasted with its output

    alice.press_on_cell(3, "Control+Shift+ArrowUp")
    nb.check("Ctrl+Shift+Up", [a, c, b, de])
    alice.press_on_cell(1, "Control+Shift+ArrowDown")
    nb.check("Ctrl+Shift+Down", [a, b, c, de])

    alice.press_on_cell(1, "Shift+M")  # with the cell below; a code cell loses its outputs
    bc = code("print(2)\n\nprint(3)")
    nb.check("Shift+M", [a, bc, de])
    alice.split_cell(2, line=1)
    d, e = code("d = 4"), code("e = 5")
    nb.check("Ctrl+Shift+-", [a, bc, d, e])

    alice.press_on_cell(1, "d", "d")
    nb.check("D D", [a, d, e])
    alice.press_on_cell(0, "z")
    nb.check("Z", [a, bc, d, e])
    # Ctrl+Z is an editor's undo (JupyterLab binds it on editors only); in command mode the
    # notebook's undo is Z, or the Edit menu's
    alice.press_on_cell(2, "d", "d")
    nb.check("D D", [a, bc, e])
    alice.menu("Edit", "Undo Cell Operation")
    nb.check("Undo Cell Operation", [a, bc, d, e], reload=True)


def test_metadata_and_attachments(lab, lab_server):
    """Cell metadata edited in the property inspector (set, nested change, key removed); an
    image dropped into a Markdown cell (an attachment), then its reference deleted (JupyterLab
    drops the unreferenced attachment when it saves)."""
    write_notebook(
        lab_server.root / "meta.ipynb",
        ["x = 1", nbformat.v4.new_markdown_cell("# notes\n", id="notes")],
    )
    nb = SharedNotebook(lab, lab_server, "meta.ipynb")
    alice = nb.alice
    notes = Cell("markdown", "# notes\n")

    tagged = {"tags": ["keep"], "custom": {"nested": [1, 2]}}
    alice.set_cell_metadata(0, tagged)
    nb.check("metadata set", [Cell("code", "x = 1", metadata=tagged), notes])
    changed = {"custom": {"nested": [1, 2, 3]}}  # a nested change, and the tags removed
    alice.set_cell_metadata(0, changed)
    x = Cell("code", "x = 1", metadata=changed)
    nb.check("metadata changed", [x, notes])

    image = png(2, 2)
    alice.edit_markdown(1)
    alice.drop_file(1, "red.png", "image/png", image)
    expect(alice.editor(1)).to_contain_text("(attachment:")
    reference = re.search(r"\(attachment:([^)]+)\)", alice.cell_text(1))
    assert reference is not None, alice.cell_text(1)
    name = reference[1]
    dropped = Cell(
        "markdown",
        f"# notes\n![red.png](attachment:{name})",
        attachments={name: {"image/png": base64.b64encode(image).decode()}},
        images=[2],
    )
    nb.check("image dropped", [x, dropped], reload=True)

    alice.edit_markdown(1)
    alice.page.keyboard.press("Shift+Home")
    alice.page.keyboard.press("Backspace")
    alice.wait_for_cell_text(1, "# notes\n")
    alice.save()
    nb.check("image reference deleted and saved", [x, notes], reload=True)
