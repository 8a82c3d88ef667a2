"""JupyterLab's collaborators panel lists the kernel of each open notebook, with its usage."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright")

from browser_support import browser_marks
from helpers import write_notebook
from playwright.sync_api import expect

pytestmark = browser_marks()


def test_the_collaborators_panel_shows_what_the_kernel_does(lab, lab_server):
    write_notebook(lab_server.root / "usage.ipynb", ["x = b'x' * (300 * 2**20)", "del x"])
    alice = lab.open("usage.ipynb", "alice")
    alice.page.locator('.lm-TabBar-tab[data-id="jp-collaboration-panel"]').click()
    collaborators = alice.page.locator(".jp-CollaboratorsList")

    alice.run_cell(0)
    expect(alice.prompt(0)).to_contain_text("[1]")
    kernel = collaborators.locator(".jp-Collaborator", has_text="usage.ipynb: Kernel")
    expect(kernel).to_contain_text(re.compile(r"usage\.ipynb: Kernel · idle · \d+ MB · \d+% CPU"))
    # the end of the run is sampled at most busy_interval/4 after the sample at its start
    expect(kernel).to_contain_text(re.compile(r"· ([3-9]\d\d|\d{4,}) MB ·"))

    alice.run_cell(1)  # the memory it frees shows at the end of the run
    expect(alice.prompt(1)).to_contain_text("[2]")
    expect(kernel).to_contain_text(re.compile(r"· (\d{1,2}|1\d\d|2[0-4]\d) MB ·"))
