"""ipywidgets in the stock JupyterLab frontend, with the cells run by the server.

A widget made by a cell the server ran renders for the user who ran it and for a second user,
without a reload and after one; moving it in one tab moves it in the other and in the kernel.
An Output widget shows what it captured once (the server captured it, not the cell).
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")

from browser_support import browser_marks
from helpers import write_notebook
from playwright.sync_api import expect

pytestmark = browser_marks()


def test_a_slider_renders_in_two_tabs_and_moves_together(lab, lab_server):
    write_notebook(
        lab_server.root / "slider.ipynb",
        ["from ipywidgets import IntSlider\ns = IntSlider(value=3)\ns", "print(s.value)"],
    )
    alice = lab.open("slider.ipynb", "alice")
    bob = lab.open("slider.ipynb", "bob")

    alice.run_cell(0)
    for user in (alice, bob):
        readout = user.cell(0).locator(".widget-readout")
        expect(readout).to_have_text("3")  # rendered as a widget, not as IntSlider(value=3)
        expect(user.output_locator(0)).not_to_contain_text("IntSlider(")

    handle = alice.cell(0).locator(".noUi-handle")
    handle.focus()
    handle.press("ArrowRight")
    handle.press("ArrowRight")
    expect(alice.cell(0).locator(".widget-readout")).to_have_text("5")
    expect(bob.cell(0).locator(".widget-readout")).to_have_text("5")

    bob.run_cell(1)
    for user in (alice, bob):
        expect(user.output_locator(1)).to_have_text("5\n")

    bob.reload()
    expect(bob.cell(0).locator(".widget-readout")).to_have_text("5")


def test_an_output_widget_shows_its_captured_text_once(lab, lab_server):
    write_notebook(
        lab_server.root / "output.ipynb",
        [
            "from ipywidgets import Output\nout = Output()\nwith out:\n"
            "    print('captured line')\nout"
        ],
    )
    alice = lab.open("output.ipynb", "alice")
    bob = lab.open("output.ipynb", "bob")
    alice.run_cell(0)
    for user in (alice, bob):
        area = user.cell(0).locator(".jp-OutputArea").first
        expect(area).to_contain_text("captured line")
        assert area.text_content().count("captured line") == 1, user.name
