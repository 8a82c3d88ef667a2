"""The server runs the cells the stock JupyterLab frontend asks for, and the outputs are shared.

With ``serverSideExecution`` on, JupyterLab's ``NotebookCellServerExecutor`` posts
``/api/kernels/<id>/execute {"cell_id", "document_id"}`` on Shift+Enter; the server runs the
cell on the notebook's kernel and writes the outputs into the shared document. So every browser
sees them, a reloaded page picks them up where they are, and a flood is cut to a readable head
and a notice (the rest stays on the server) instead of freezing the page.
"""

from __future__ import annotations

import re

import httpx
import pytest

pytest.importorskip("playwright")

from browser_support import browser_marks, wait_for_file
from helpers import read_notebook_file, write_notebook
from playwright.sync_api import expect

pytestmark = browser_marks()

#: JS condition over an output area's text: the number of ``tick i`` lines is above ``arg``
TICKS_ABOVE = r"(text, n) => (text.match(/^tick \d+$/gm) || []).length > n"
#: how long a page may take to answer before it counts as frozen
HANG_MS = 10_000


def ticks(text: str) -> list[str]:
    return re.findall(r"^tick \d+$", text, flags=re.M)


def stdout_on_disk(path, n: int = 0) -> tuple[str, int | None] | None:
    """Cell ``n``'s stdout and execution count in the file."""
    nb = read_notebook_file(path)
    if nb is None or len(nb.cells) <= n:
        return None
    cell = nb.cells[n]
    stdout = (o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")
    return "".join(stdout), cell.get("execution_count")


def test_shift_enter_in_one_browser_shows_the_output_in_the_other(lab, lab_server):
    """Alice runs a cell; the server runs it once and Bob sees the same output and prompt."""
    write_notebook(lab_server.root / "run.ipynb", ["print(6*7)", "x = 1"])
    alice = lab.open("run.ipynb", "alice")
    bob = lab.open("run.ipynb", "bob")

    alice.run_cell(0)
    for user in (bob, alice):
        expect(user.output_locator(0)).to_contain_text("42")
        # a pooled kernel starts clean: the first cell run is In [1]
        expect(user.prompt(0)).to_contain_text("[1]")
    for user in (alice, bob):
        shown = [text.strip() for text in user.outputs(0)]
        assert shown == ["42"], f"{user.name} shows {shown!r}"  # once, not once per user
        assert user.cell_texts() == ["print(6*7)", "x = 1"]
        expect(user.dialogs).to_have_count(0)
    # JupyterLab's own kernel websocket to a pooled kernel started with the pool's kernel_info
    # and iopub subscription (pool/head_start.py), and the page works with it
    pool = httpx.get(lab_server.api("cocalc-sync/kernels"), params={"token": lab_server.token})
    pool = pool.json()["pool"]
    assert pool["head_starts"]["used"] == pool["counters"]["claimed"]


def test_outputs_keep_coming_after_a_page_reload(lab, lab_server):
    """The cell runs on the server, not in the page: reloading mid-run loses nothing."""
    count = 27  # one line every 0.3 s
    # the cell holds before its last lines until this file exists: it still runs when the
    # reloaded page is back, however long the reload takes
    go_on = lab_server.root / "go-on"
    nb_path = lab_server.root / "long.ipynb"
    write_notebook(
        nb_path,
        [
            "import os, time\n"
            f"for i in range({count}):\n"
            f"    while i == {count - 5} and not os.path.exists({str(go_on)!r}):\n"
            "        time.sleep(0.1)\n"
            "    print(f'tick {i}', flush=True)\n"
            "    time.sleep(0.3)"
        ],
    )
    alice = lab.open("long.ipynb", "alice")
    alice.run_cell(0)
    alice.wait_for_output(0, TICKS_ABOVE, 2)  # a few lines are there

    expect(alice.prompt(0)).to_contain_text("[*]")  # running (the count comes at the end)

    alice.reload()
    # the reloaded page shows what ran while it was away, and the cell is still running
    alice.wait_for_output(0, TICKS_ABOVE, 0)
    expect(alice.prompt(0)).to_contain_text("[*]")
    after_reload = len(ticks(alice.output_text(0)))
    assert after_reload < count, "the cell ended before the page was back: nothing to test"
    go_on.touch()
    alice.wait_for_output(0, TICKS_ABOVE, after_reload)  # ... and grows while we watch
    expect(alice.output_locator(0)).to_contain_text(f"tick {count - 1}", timeout=20_000)
    expect(alice.prompt(0)).to_contain_text("[1]")

    expected = [f"tick {i}" for i in range(count)]
    assert ticks(alice.output_text(0)) == expected  # each line once, in order
    # the server saved every line (it saves on its own, after autosave_delay)
    expected_text = "".join(f"{line}\n" for line in expected)
    wait_for_file(nb_path, lambda p: stdout_on_disk(p) == (expected_text, 1))
