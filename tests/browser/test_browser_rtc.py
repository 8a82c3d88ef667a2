"""Two users edit one notebook in the stock JupyterLab RTC frontend, served by this extension.

This is the point of the extension: ``jupyter-docprovider`` and ``jupyter-collaboration-ui``
work unchanged against our session route and rooms, and edits reach the ``.ipynb`` on disk.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("playwright")

from browser_support import browser_marks, file_hash, wait_for_file
from helpers import read_notebook_file, write_notebook
from playwright.sync_api import expect

pytestmark = browser_marks()


@pytest.fixture(scope="module")
def lab_config() -> dict[str, Any]:
    """An autosave landing between Ctrl+S's hash check and the frontend hearing of it is a
    real "File Changed" race (the stock server has it too): a 1 s delay keeps it out of
    ``test_ctrl_s_after_an_autosave_saves_without_a_dialog``."""
    return {"CocalcSync": {"autosave_delay": 1.0, "file_poll_interval": 0.2}}


def sources_on_disk(path):
    nb = read_notebook_file(path)
    return None if nb is None else [cell.source for cell in nb.cells]


def test_two_users_see_each_others_edits_and_they_reach_disk(lab, lab_server):
    """Two browser contexts (two users) on one notebook: edits and new cells cross over."""
    nb_path = lab_server.root / "shared.ipynb"
    write_notebook(nb_path, ["a = 1"])

    alice = lab.open("shared.ipynb", "alice")
    bob = lab.open("shared.ipynb", "bob")
    assert alice.cell_texts() == ["a = 1"]
    assert bob.cell_texts() == ["a = 1"]

    # typed in one browser, seen in the other
    alice.type_in_cell(0, "\nb = 2")
    bob.wait_for_cell_text(0, "a = 1\nb = 2")

    # ... and the other way round
    bob.type_in_cell(0, "  # bob")
    alice.wait_for_cell_text(0, "a = 1\nb = 2  # bob")

    # a cell added in one browser appears in the other, and its text follows
    bob.insert_cell_below(0)
    alice.wait_for_cell_count(2)
    bob.type_in_cell(1, "print('from bob')")
    alice.wait_for_cell_text(1, "print('from bob')")
    expected = ["a = 1\nb = 2  # bob", "print('from bob')"]
    assert alice.cell_texts() == bob.cell_texts() == expected

    # the server's autosave writes what both typed to the file
    wait_for_file(nb_path, lambda p: sources_on_disk(p) == expected)

    # one kernel session for both, and nothing asked either user anything
    sessions = lab_server.sessions()
    assert [s["path"] for s in sessions] == [lab_server.path("shared.ipynb")]
    for user in (alice, bob):
        expect(user.dialogs).to_have_count(0)


def test_ctrl_s_after_an_autosave_saves_without_a_dialog(lab, lab_server):
    """The server autosaves behind the frontend's back; Ctrl+S must still just work.

    The frontend checks the file's hash before saving (a stale one gives "File Changed") and
    treats a "skipped" save reply as "Saving already in progress" (an error dialog).
    """
    nb_path = lab_server.root / "saved.ipynb"
    write_notebook(nb_path, ["x = 1"])
    alice = lab.open("saved.ipynb", "alice")

    alice.type_in_cell(0, "0")
    wait_for_file(nb_path, lambda p: sources_on_disk(p) == ["x = 10"])
    # the server publishes each saved file's hash in the notebook's state map
    alice.wait_for_known_hash(file_hash(nb_path))

    alice.save()  # nothing new to save: still "Saving completed", no dialog
    alice.type_in_cell(0, "0")
    alice.save()
    assert sources_on_disk(nb_path) == ["x = 100"]
