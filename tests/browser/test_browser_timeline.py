"""The stock status-bar timeline slider (jupyter-docprovider) over this server's history:
drag it back to see an old version (cells and outputs), restore it, and the other user's tab
follows."""

from __future__ import annotations

import json

import httpx
import nbformat
import pytest

pytest.importorskip("playwright")

from browser_support import browser_marks, wait_for_file
from helpers import read_notebook_file, write_notebook
from playwright.sync_api import expect

pytestmark = browser_marks(timeout=240)

OLD = [{"source": "a = 1", "outputs": ["one\n"]}, {"source": "b = 2", "outputs": []}]
NEW = [{"source": "a = 10", "outputs": ["ten\n"]}, {"source": "c = 3", "outputs": []}]


def change_by_rest(lab_server) -> None:
    """A newer version: cell-0 rewritten with a new output, cell-1 deleted, cell-2 added."""
    body = {
        "set": [
            {
                "type": "cell",
                "id": "cell-0",
                "input": "a = 10",
                "output": {"0": nbformat.v4.new_output("stream", name="stdout", text="ten\n")},
            },
            {"type": "cell", "id": "cell-2", "input": "c = 3", "pos": 5},
        ],
        "delete": [{"type": "cell", "id": "cell-1"}],
    }
    response = httpx.post(
        lab_server.api(f"cocalc-sync/notebooks/{lab_server.path('nb.ipynb')}/records"),
        headers={"Authorization": f"token {lab_server.token}"},
        content=json.dumps(body),
    )
    response.raise_for_status()


def test_the_timeline_slider_shows_and_restores_an_old_version(lab, lab_server):
    first = nbformat.v4.new_code_cell(
        "a = 1",
        id="cell-0",
        outputs=[nbformat.v4.new_output("stream", name="stdout", text="one\n")],
    )
    write_notebook(
        lab_server.root / "nb.ipynb", [first, nbformat.v4.new_code_cell("b = 2", id="cell-1")]
    )
    alice = lab.open("nb.ipynb", "alice")
    bob = lab.open("nb.ipynb", "bob")
    change_by_rest(lab_server)
    for user in (alice, bob):
        user.wait_for_cells(NEW)

    alice.page.locator('.jp-mod-highlighted[title="Document Timeline"]').click()
    slider = alice.page.locator(".jp-timestampDisplay input.jp-Slider")
    expect(slider).to_be_visible()
    # the file, JupyterLab's kernel metadata, the REST change: the slider starts at the newest
    expect(slider).to_have_value(slider.get_attribute("max") or "")
    slider.fill("0")  # dragged to the oldest version
    alice.wait_for_cells(OLD)
    bob.wait_for_cells(NEW)  # looking at history changes nobody else's notebook

    alice.page.locator(".jp-restoreBtn").click()
    bob.wait_for_cells(OLD)  # the restore is live for every collaborator
    alice.wait_for_cells(OLD)  # back in the notebook's room, nothing doubled
    wait_for_file(
        lab_server.root / "nb.ipynb",
        lambda p: (
            (nb := read_notebook_file(p)) is not None
            and [c.source for c in nb.cells] == ["a = 1", "b = 2"]
            and [o.get("text") for o in nb.cells[0].outputs] == ["one\n"]
        ),
    )
    # what alice types now reaches bob: her tab writes to the notebook again
    alice.type_in_cell(1, "  # alice")
    bob.wait_for_cell_text(1, "b = 2  # alice")
    bob.wait_for_cells([OLD[0], {"source": "b = 2  # alice"}])
