"""The frontend extension (labextension/): what stock JupyterLab cannot show for a notebook the
server owns and runs — an input box for a server-run cell's ``input()``/``getpass()`` in every
tab, the overflow of a truncated output in place and paged, and JupyterLab's error dialog for a
notebook the server cannot open."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

pytest.importorskip("playwright")

from browser_support import (
    KERNEL_IDLE,
    TIMEOUT_MS,
    LabSession,
    LabUser,
    browser_marks,
    wait_for_file,
)
from helpers import read_notebook_file, write_notebook
from lab_servers import DEFAULT_LAB_CONFIG, LabFolder, lab_process, stop_lab
from playwright.sync_api import Locator, expect

import jupyter_cocalc_sync

pytestmark = browser_marks(timeout=300)

# (every expectation says how long it waits: Playwright's own default is 5 s, short for a
# server on two busy cores)

#: the input box of a pending input()/getpass() (labextension/src/inputRequest.ts)
INPUT_BOX = ".jp-cocalcSync-inputRequest input.jp-Stdin-input"
#: the "more output" view (labextension/src/moreOutput.ts)
MORE_OUTPUT = ".jp-cocalcSync-moreOutput"


def input_box(user: LabUser, n: int) -> Locator:
    return user.cell(n).locator(INPUT_BOX)


def answer(user: LabUser, n: int, value: str) -> None:
    box = input_box(user, n)
    expect(box).to_be_enabled(timeout=TIMEOUT_MS)
    box.fill(value)
    box.press("Enter")


def stdout_in_file(path: Path, n: int) -> str | None:
    nb = read_notebook_file(path)
    if nb is None or len(nb.cells) <= n or nb.cells[n].get("execution_count") is None:
        return None
    return "".join(o.get("text", "") for o in nb.cells[n].outputs if o.get("name") == "stdout")


def api(server: LabFolder, route: str) -> httpx.Response:
    answer = httpx.get(
        server.api(f"cocalc-sync/{route}"), params={"token": server.token}, timeout=60
    )
    answer.raise_for_status()
    return answer


def test_input_answered_from_the_other_users_tab_and_the_box_goes_everywhere(lab, lab_server):
    path = lab_server.root / "ask.ipynb"
    write_notebook(path, ["name = input('Your name: ')\nprint(f'Hello, {name}!')"])
    alice = lab.open("ask.ipynb", "alice")
    bob = lab.open("ask.ipynb", "bob")
    alice.run_cell(0)
    for user in (alice, bob):
        expect(input_box(user, 0)).to_be_visible(timeout=TIMEOUT_MS)
        expect(input_box(user, 0)).to_have_attribute("type", "text", timeout=TIMEOUT_MS)
        expect(user.cell(0).locator(".jp-cocalcSync-inputRequest")).to_contain_text(
            "Your name:", timeout=TIMEOUT_MS
        )
    answer(bob, 0, "Ada")
    for user in (alice, bob):
        expect(user.output_locator(0)).to_contain_text("Hello, Ada!", timeout=TIMEOUT_MS)
        expect(input_box(user, 0)).to_have_count(0, timeout=TIMEOUT_MS)
        expect(user.prompt(0)).to_contain_text("[1]", timeout=TIMEOUT_MS)
        assert [t.strip() for t in user.outputs(0)] == ["Your name: Ada\nHello, Ada!"]
    wait_for_file(path, lambda p: stdout_in_file(p, 0) == "Your name: Ada\nHello, Ada!\n")


def test_a_pending_input_is_still_answerable_after_a_reload(lab, lab_server):
    write_notebook(lab_server.root / "ask.ipynb", ["print(input('? ') * 2)"])
    alice = lab.open("ask.ipynb", "alice")
    alice.run_cell(0)
    expect(input_box(alice, 0)).to_be_visible(timeout=TIMEOUT_MS)
    alice.reload()
    answer(alice, 0, "ab")
    expect(alice.output_locator(0)).to_contain_text("abab", timeout=TIMEOUT_MS)
    expect(input_box(alice, 0)).to_have_count(0, timeout=TIMEOUT_MS)


def test_getpass_is_a_password_box_and_its_value_reaches_no_document_file_or_history(
    lab, lab_server
):
    secret = "hunter2-never-stored"
    path = lab_server.root / "secret.ipynb"
    write_notebook(
        path, ["import getpass\nsecret = getpass.getpass('Password: ')\nprint(len(secret))"]
    )
    alice = lab.open("secret.ipynb", "alice")
    bob = lab.open("secret.ipynb", "bob")
    alice.run_cell(0)
    for user in (alice, bob):
        expect(input_box(user, 0)).to_have_attribute("type", "password", timeout=TIMEOUT_MS)
    answer(alice, 0, secret)
    for user in (alice, bob):
        expect(user.output_locator(0)).to_contain_text(str(len(secret)), timeout=TIMEOUT_MS)
        expect(input_box(user, 0)).to_have_count(0, timeout=TIMEOUT_MS)
        assert secret not in user.output_text(0)
    wait_for_file(path, lambda p: stdout_in_file(p, 0) == f"Password: \n{len(secret)}\n")
    assert secret not in path.read_text()
    notebook = f"notebooks/{lab_server.path('secret.ipynb')}"
    records = api(lab_server, notebook).text
    assert "Password: " in records and secret not in records
    versions = api(lab_server, f"{notebook}/history").json()["versions"]
    assert versions
    for version in versions:
        assert secret not in api(lab_server, f"{notebook}/history/{version['version']}").text
    assert secret not in lab_server.log()


def test_the_demo_runs_top_to_bottom_with_its_input_answered_in_the_browser(lab, lab_server):
    demo = Path(jupyter_cocalc_sync.__file__).parent / "demo" / "demo.ipynb"
    shutil.copyfile(demo, lab_server.root / "demo.ipynb")
    cells = json.loads(demo.read_text())["cells"]
    last = len(cells) - 1
    assert cells[last]["id"] == "input"
    alice = lab.open("demo.ipynb", "alice", wait=False)  # (its first cell is Markdown)
    expect(alice.status_bar).to_contain_text(KERNEL_IDLE, timeout=60_000)
    alice.menu("Run", "Run All Cells")
    box = input_box(alice, last)
    expect(box).to_be_visible(timeout=180_000)  # after the flood, the progress bar, the image
    answer(alice, last, "Grace")
    expect(alice.output_locator(last)).to_contain_text("Hello, Grace!", timeout=TIMEOUT_MS)
    codes = [n for n, c in enumerate(cells) if c["cell_type"] == "code"]
    for count, n in enumerate(codes, start=1):
        expect(alice.prompt(n)).to_contain_text(f"[{count}]", timeout=TIMEOUT_MS)


def test_a_million_line_output_is_shown_a_page_at_a_time_and_the_tab_stays_responsive(
    lab, lab_server
):
    lines = 1_000_000
    write_notebook(lab_server.root / "flood.ipynb", [f"for i in range({lines}): print(i)", ""])
    alice = lab.open("flood.ipynb", "alice")
    alice.run_cell(0)
    expect(alice.prompt(0)).to_contain_text("[1]", timeout=180_000)
    view = alice.cell(0).locator(MORE_OUTPUT)
    status = view.locator(".jp-cocalcSync-moreOutput-status")
    expect(status).to_contain_text("MB more are kept on the server", timeout=TIMEOUT_MS)
    head = alice.outputs(0)[0]
    last_shown = int(head.rstrip("\n").rsplit("\n", 1)[-1])
    assert 10_000 < last_shown < lines - 1, last_shown
    # the marker shows as the view, not as the table's marker or nbformat JSON
    expect(alice.cell(0).locator(".jp-OutputArea")).not_to_contain_text('{"', timeout=TIMEOUT_MS)

    pages = view.locator(".jp-cocalcSync-moreOutput-pages .jp-OutputArea")
    button = view.get_by_role("button", name="Show more")
    for shown in (1, 2):
        button.click()
        expect(pages).to_have_count(shown, timeout=TIMEOUT_MS)
        expect(button).to_be_enabled(timeout=TIMEOUT_MS)
    expect(status).to_contain_text("Shown", timeout=TIMEOUT_MS)
    expect(status).to_contain_text("MB more", timeout=TIMEOUT_MS)
    paged = pages.nth(0).text_content() + pages.nth(1).text_content()
    expected_start = "".join(f"{i}\n" for i in range(last_shown + 1, last_shown + 100))
    assert paged.startswith(expected_start), paged[:200]
    assert f"\n{lines - 1}\n" not in paged  # two pages, not the whole overflow
    assert len(paged) < 2_000_000, len(paged)

    # the tab answers: a keystroke into another cell shows up
    alice.focus_cell(1)
    alice.editor(1).press_sequentially("y", timeout=5_000)
    alice.wait_for_cell_text(1, "y", timeout_ms=5_000)


def test_an_unreadable_notebook_gets_jupyterlabs_error_dialog(lab, lab_server):
    (lab_server.root / "broken.ipynb").write_text("this is not JSON")
    alice = lab.open("broken.ipynb", "alice", wait=False)
    dialog = alice.dialogs
    expect(dialog).to_have_count(1, timeout=30_000)
    expect(dialog).to_contain_text("File Load Error for broken.ipynb", timeout=TIMEOUT_MS)
    expect(dialog).to_contain_text("not a valid notebook: not JSON", timeout=TIMEOUT_MS)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0, timeout=TIMEOUT_MS)
    # the tab is closed: no endless "Loading"
    expect(alice.page.locator(".jp-NotebookPanel")).to_have_count(0, timeout=TIMEOUT_MS)


def test_a_run_cut_off_by_a_server_restart_shows_its_error(lab, lab_server):
    path = lab_server.root / "long.ipynb"
    write_notebook(
        path,
        ["import time\nfor i in range(60):\n    print(f'line {i}', flush=True)\n    time.sleep(1)"],
    )
    alice = lab.open("long.ipynb", "alice")
    alice.run_cell(0)
    expect(alice.output_locator(0)).to_contain_text("line 3", timeout=TIMEOUT_MS)
    lab_server.restart()  # killed (kernels and all) and started again
    bob = lab.open("long.ipynb", "bob")
    expect(bob.output_locator(0).last).to_contain_text("RunCutOff", timeout=TIMEOUT_MS)
    expect(bob.output_locator(0).last).to_contain_text(
        "the run was cut off here", timeout=TIMEOUT_MS
    )
    expect(bob.prompt(0)).not_to_contain_text("[*]", timeout=TIMEOUT_MS)
    assert bob.output_text(0).startswith("line 0\nline 1\nline 2\nline 3\n")
    assert "line 59" not in bob.output_text(0)


# (jupyter_server logs each request the gateway could not serve)
@pytest.mark.expect_errors(r"503 GET /api/")
def test_a_kernel_gateway_that_is_down_is_said_in_jupyterlab(browser, tmp_path):
    """A server of its own, configured with a gateway where nothing listens."""
    config = {**DEFAULT_LAB_CONFIG, "GatewayClient": {"url": "http://127.0.0.1:9"}}
    server = lab_process(tmp_path, config)
    lab = LabSession(browser, LabFolder(server, "gateway"), tmp_path / "artifacts")
    try:
        # (/api/status answers 503: it lists the gateway's kernels; /api asks no gateway)
        server.start(timeout=90, ready_path="/api")
        write_notebook(server.root / "gateway" / "nb.ipynb", ["1"])
        alice = lab.open("nb.ipynb", "alice", wait=False)
        toast = alice.page.get_by_text("No kernel can start")
        expect(toast).to_be_visible(timeout=60_000)
        expect(toast).to_contain_text("Gateway", timeout=TIMEOUT_MS)
    finally:
        lab.close()
        stop_lab(server)
