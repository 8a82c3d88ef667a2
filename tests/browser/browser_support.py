"""Reusable pieces for tests that drive the stock JupyterLab frontend in headless Chromium.

The launch flags, readiness selectors and pitfalls come from RESEARCH.md ("Real-browser tests
of JupyterLab here"). Every wait is on the DOM or on a file, never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from browser_commands import NotebookCommands
from lab_servers import LabFolder
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: generous: two cores shared with other test runs; a healthy run is far below it
TIMEOUT_MS = 30_000
# every ``expect`` without a timeout of its own (Playwright's default is 5 s, which a fresh
# kernel's first run on a loaded machine exceeds)
expect.set_options(timeout=TIMEOUT_MS)
#: the status bar's kernel item once a kernel is connected and idle ("Python 3 (ipykernel) | Idle")
KERNEL_IDLE = re.compile(r"Python 3.*\|\s*Idle")

#: every cell of the notebook shown in the main area (other tabs' notebooks are hidden)
CELLS_SELECTOR = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"

#: the text of a CodeMirror editor as the user sees it, without widgets (placeholders, remote
#: cursor labels): the text nodes of every ``.cm-line`` outside contenteditable=false subtrees
EDITOR_TEXT_JS = """
(content) => Array.from(content.querySelectorAll('.cm-line'), (line) => {
    const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT, {
        acceptNode: (node) => node.parentElement.closest('[contenteditable="false"]')
            ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
    });
    let text = '';
    while (walker.nextNode()) text += walker.currentNode.data;
    return text;
}).join('\\n')
"""

#: what the page shows of each cell of the visible notebook: its type, its editor's text, the
#: text of each output, and the natural width of each image of its rendered Markdown (0 while
#: the image has not loaded or cannot be decoded)
CELLS_SHOWN_JS = f"""
(selector) => Array.from(document.querySelectorAll(selector), (cell) => {{
    const content = cell.querySelector('.cm-content');
    return {{
        type: ['code', 'markdown', 'raw'].find(
            (t) => cell.classList.contains(`jp-${{t[0].toUpperCase()}}${{t.slice(1)}}Cell`)),
        source: content ? ({EDITOR_TEXT_JS})(content) : null,
        outputs: Array.from(cell.querySelectorAll('.jp-OutputArea-output'), (o) => o.textContent),
        images: Array.from(
            cell.querySelectorAll('.jp-RenderedMarkdown img'), (img) => img.naturalWidth),
    }};
}})
"""

#: from now on, ``window.cocalcSyncSaveEnded`` is how the visible notebook's next save ended
#: ("completed" or "failed", from its context's ``saveState`` signal; null until then), and
#: ``window.cocalcSyncCheckpointed`` whether the checkpoint JupyterLab's save command makes
#: after a completed save has been made. The command ignores a Ctrl+S until then (it keeps the
#: context in its set of saves under way until the checkpoint is made), as a person pressing
#: Ctrl+S twice quickly sees: the next save waits for it.
WATCH_SAVE_STATE_JS = """
() => {
    const context = window.jupyterapp.shell.currentWidget.context;
    window.cocalcSyncSaveEnded = null;
    window.cocalcSyncCheckpointed = false;
    const ended = (_, state) => {
        if (state === 'started') return;
        window.cocalcSyncSaveEnded = state;
        context.saveState.disconnect(ended);
    };
    context.saveState.connect(ended);
    const createCheckpoint = context.createCheckpoint;
    context.createCheckpoint = function () {
        context.createCheckpoint = createCheckpoint;
        // (settles before the command's own await resumes and ends the save it tracks)
        return createCheckpoint.call(context).finally(() => {
            window.cocalcSyncCheckpointed = true;
        });
    };
}
"""

#: the save ``WATCH_SAVE_STATE_JS`` watches is over: failed, or completed and checkpointed
SAVE_OVER_JS = """
() => (window.cocalcSyncSaveEnded === 'completed' && window.cocalcSyncCheckpointed)
    || (window.cocalcSyncSaveEnded && window.cocalcSyncSaveEnded !== 'completed')
    || document.querySelector('.jp-Dialog')
"""


def chromium_missing_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} is missing: install Debian's chromium "
            "(apt-get install chromium, or run tests/run.sh) to run the browser tests"
        )
    return None


#: A tab that reloads or closes while its kernel talks: jupyter_server's kernel websocket writes
#: the kernel's messages to it without catching WebSocketClosedError for the protocol JupyterLab
#: speaks (``v1.kernel.websocket.jupyter.org``; it does for the legacy one) and pyzmq logs the
#: error. Not this package's code: ``pool/websocket.py`` leaves the writing to jupyter_server.
CLOSED_TAB_WRITE = (
    r"(?s)(_on_zmq_reply|websocket\.py\", line \d+, in wrapper).*"
    r"raise WebSocketClosedError\(\)\n\s*tornado\.websocket\.WebSocketClosedError(\n|$)"
)


def browser_marks(timeout: float = 120) -> list[Any]:
    """The marks of a browser test module: ``browser``, skipped without Chromium, a timeout,
    and the error a closing tab makes jupyter_server log (``CLOSED_TAB_WRITE``)."""
    import pytest

    missing = chromium_missing_reason()
    return [
        pytest.mark.browser,
        pytest.mark.skipif(missing is not None, reason=str(missing)),
        pytest.mark.timeout(timeout),
        pytest.mark.expect_errors(CLOSED_TAB_WRITE),
    ]


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


def file_hash(path: Path) -> str:
    """The hash the contents API reports for ``path`` (sha256 of its bytes, the default)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for_value(
    read: Callable[[], Any], expected: Any, what: str, timeout: float = 15, every: float = 0.05
) -> None:
    """Poll ``read()`` until it equals ``expected`` (for state outside the page: the server's
    records, a file); fails with the last value read."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} is {value!r}, not {expected!r}, after {timeout} s")
        time.sleep(every)


def wait_for_file(
    path: Path, predicate: Callable[[Path], Any], timeout: float = 15, every: float = 0.05
) -> Any:
    """Poll ``path`` until ``predicate(path)`` is truthy (a file change has no event to await)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate(path) if path.exists() else None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not reach the expected state in {timeout} s")
        time.sleep(every)


class LabUser(NotebookCommands):
    """One user: a browser context (own cookies, own awareness identity) with a notebook open.

    What the user does beyond typing and running (menus, keys, the property inspector) is in
    ``NotebookCommands``."""

    def __init__(self, name: str, context: BrowserContext, page: Page) -> None:
        self.name = name
        self.context = context
        self.page = page
        #: console messages, page errors and websocket closes, for failure reports
        self.log: list[str] = []
        page.on("console", lambda m: self.log.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.log.append(f"pageerror: {e}"))
        page.on("websocket", self._watch_websocket)

    def _watch_websocket(self, ws: Any) -> None:
        url = ws.url.split("?")[0]
        self.log.append(f"websocket open: {url}")
        ws.on("close", lambda _ws: self.log.append(f"websocket close: {url}"))

    # -- locators ----------------------------------------------------------------------------
    @property
    def notebook(self) -> Locator:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")

    @property
    def cells(self) -> Locator:
        return self.notebook.locator(".jp-Cell")

    def cell(self, n: int) -> Locator:
        return self.cells.nth(n)

    def editor(self, n: int) -> Locator:
        return self.cell(n).locator(".cm-content")

    def output_locator(self, n: int) -> Locator:
        return self.cell(n).locator(".jp-OutputArea-output")

    def prompt(self, n: int) -> Locator:
        """Cell ``n``'s input prompt: ``[ ]:``, ``[*]:`` or ``[3]:``."""
        return self.cell(n).locator(".jp-InputPrompt")

    @property
    def status_bar(self) -> Locator:
        return self.page.locator("#jp-main-statusbar")

    # -- waiting -----------------------------------------------------------------------------
    def wait_ready(self, kernel_idle: re.Pattern[str] | None = KERNEL_IDLE) -> LabUser:
        """Wait until the first cell's editor shows and (unless None) the kernel is idle.

        The status bar, not the toolbar's indicator, which reads idle before a kernel exists.
        """
        expect(self.editor(0)).to_be_visible(timeout=TIMEOUT_MS)
        self._dismiss_slow_load_dialog()
        if kernel_idle is not None:
            expect(self.status_bar).to_contain_text(kernel_idle, timeout=TIMEOUT_MS)
        return self

    def _dismiss_slow_load_dialog(self) -> None:
        """Close JupyterLab's "taking some time to load" dialog, if the notebook (now shown)
        took more than the frontend's 5 seconds to sync: the person waiting would click
        "Continue waiting". On two busy cores the page itself can take that long to handle the
        server's answer; a server that never answers fails ``wait_ready`` before this."""
        slow_load = self.dialogs.filter(has_text="taking some time to load")
        if slow_load.count():
            self.log.append("the first sync took more than 5 s: continued waiting")
            slow_load.locator("button", has_text="Continue waiting").click()
            expect(slow_load).to_have_count(0)

    def wait_for_cell_text(self, n: int, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
        """Wait until cell ``n``'s editor holds exactly ``text``."""
        selector = CELLS_SELECTOR
        try:
            self.page.wait_for_function(
                f"""([n, text, selector]) => {{
                    const cell = document.querySelectorAll(selector)[n];
                    const content = cell && cell.querySelector('.cm-content');
                    return content !== null && content !== undefined
                        && ({EDITOR_TEXT_JS})(content) === text;
                }}""",
                arg=[n, text, selector],
                timeout=timeout_ms,
            )
        except PlaywrightTimeoutError:
            raise AssertionError(
                f"{self.name}: cell {n} never read {text!r}; the cells read {self.cell_texts()!r}"
            ) from None

    def wait_for_output(
        self, n: int, condition_js: str, arg: Any = None, timeout_ms: int = TIMEOUT_MS
    ) -> None:
        """Wait until ``condition_js`` — a JS ``(text, arg) => bool`` over the text of cell
        ``n``'s output area (all outputs, as rendered: ``textContent``) — holds."""
        selector = CELLS_SELECTOR
        try:
            self.page.wait_for_function(
                f"""([n, selector, arg]) => {{
                    const cell = document.querySelectorAll(selector)[n];
                    const area = cell && cell.querySelector('.jp-OutputArea');
                    return ({condition_js})(area ? area.textContent : '', arg);
                }}""",
                arg=[n, selector, arg],
                timeout=timeout_ms,
            )
        except PlaywrightTimeoutError:
            shown = self.output_text(n)
            raise AssertionError(
                f"{self.name}: cell {n}'s output never met {condition_js} (arg {arg!r}); "
                f"it reads {shown[:300]!r}{' …' if len(shown) > 300 else ''} "
                f"({len(shown)} chars)"
            ) from None

    def wait_for_cells(self, expected: list[dict[str, Any]], timeout_ms: int = TIMEOUT_MS) -> None:
        """Wait until the notebook shows exactly ``len(expected)`` cells, each with the values
        of ``expected[i]`` (any of the keys of ``cells_shown``: a partial match)."""
        selector = CELLS_SELECTOR
        try:
            self.page.wait_for_function(
                f"""([selector, expected]) => {{
                    const shown = ({CELLS_SHOWN_JS})(selector);
                    return shown.length === expected.length && expected.every(
                        (cell, i) => Object.keys(cell).every(
                            (k) => JSON.stringify(shown[i][k]) === JSON.stringify(cell[k])));
                }}""",
                arg=[selector, expected],
                timeout=timeout_ms,
            )
        except PlaywrightTimeoutError:
            raise AssertionError(
                f"{self.name} never showed the cells {expected!r}; it shows {self.cells_shown()!r}"
            ) from None

    def wait_for_cell_count(self, count: int) -> None:
        expect(self.cells).to_have_count(count, timeout=TIMEOUT_MS)

    def wait_for_known_hash(self, expected: str, timeout_ms: int = TIMEOUT_MS) -> None:
        """Wait until the open notebook's context knows ``expected`` as the file's hash.

        The frontend compares it with the file's before every save; a stale one gives the
        "File Changed" dialog. It learns it from the server's ``state.hash`` after each save.
        """
        try:
            self.page.wait_for_function(
                "(h) => window.jupyterapp.shell.currentWidget?.context?.contentsModel?.hash === h",
                arg=expected,
                timeout=timeout_ms,
            )
        except PlaywrightTimeoutError:
            raise AssertionError(
                f"the frontend believes the file's hash is {self.known_hash()!r}, "
                f"not {expected!r}: did the server set state.hash when it saved?"
            ) from None

    # -- reading -----------------------------------------------------------------------------
    def cell_text(self, n: int) -> str:
        """The text of cell ``n``'s editor, as displayed."""
        return self.editor(n).evaluate(EDITOR_TEXT_JS)

    def cell_texts(self) -> list[str]:
        return [self.cell_text(i) for i in range(self.cells.count())]

    def cells_shown(self) -> list[dict[str, Any]]:
        """Each cell as the page shows it: ``type``, ``source``, ``outputs``, ``images``."""
        selector = CELLS_SELECTOR
        shown: list[dict[str, Any]] = self.page.evaluate(CELLS_SHOWN_JS, selector)
        return shown

    def outputs(self, n: int) -> list[str]:
        """The text of each output of cell ``n`` as rendered (``textContent``: ``innerText`` is
        empty for a cell the windowed notebook has not laid out, e.g. below a long output)."""
        return self.output_locator(n).all_text_contents()

    def output_text(self, n: int) -> str:
        """All of cell ``n``'s outputs as one rendered text ("" without outputs)."""
        return "\n".join(self.outputs(n))

    @property
    def dialogs(self) -> Locator:
        return self.page.locator(".jp-Dialog")

    def known_hash(self) -> str | None:
        return self.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget?.context?.contentsModel?.hash ?? null"
        )

    # -- acting ------------------------------------------------------------------------------
    def focus_cell(self, n: int, *, at_end: bool = True) -> None:
        """Put the cursor into cell ``n``'s editor (edit mode), at its end by default."""
        self.editor(n).click()
        if at_end:
            self.page.keyboard.press("Control+End")

    def type_in_cell(self, n: int, text: str, *, at_end: bool = True) -> None:
        """Type ``text`` key by key into cell ``n``, as a user would."""
        self.focus_cell(n, at_end=at_end)
        self.page.keyboard.type(text)

    def run_cell(self, n: int) -> None:
        """Shift+Enter in cell ``n``."""
        self.focus_cell(n)
        self.page.keyboard.press("Shift+Enter")

    def reload(self, kernel_idle: re.Pattern[str] | None = None) -> None:
        """Reload the page and wait until the notebook shows again (``wait_ready``).

        By default not for the kernel: while a cell runs, the reloaded page's kernel status is
        "Unknown" until the cell ends (ipykernel answers its kernel_info_request only then).
        """
        self.log.append("page reload")
        self.page.reload()
        self.wait_ready(kernel_idle)

    def save(self) -> None:
        """Ctrl+S, then wait until the notebook's context says the save ended (its
        ``saveState`` signal, which the status bar's "Saving completed" shows) and the save
        command's checkpoint is made; it must have completed, and with no dialog.

        The signal itself, not the status bar: its message stays 2 s, so a save's own
        "Saving completed" could only be told from an earlier save's once that had gone.
        """
        self.page.evaluate(WATCH_SAVE_STATE_JS)
        self.page.keyboard.press("Control+s")
        try:
            self.page.wait_for_function(SAVE_OVER_JS, timeout=TIMEOUT_MS)
        except PlaywrightTimeoutError:
            raise AssertionError(f"{self.name}: Ctrl+S never ended in a save") from None
        assert self.dialogs.count() == 0, f"saving showed {self.dialogs.all_inner_texts()}"
        ended = self.page.evaluate("() => window.cocalcSyncSaveEnded")
        assert ended == "completed", f"{self.name}: the save ended {ended!r}"

    def insert_cell_below(self, n: int) -> None:
        """Command mode ``b`` on cell ``n``: a new empty code cell below it."""
        self.focus_cell(n)
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("b")

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)


class LabSession:
    """Opens notebooks of a test's folder for several users, and keeps what a failure needs."""

    def __init__(self, browser: Browser, server: LabFolder, artifacts: Path) -> None:
        self.browser = browser
        self.server = server
        self.artifacts = artifacts
        self.users: list[LabUser] = []

    def open(self, notebook: str, name: str | None = None, *, wait: bool = True) -> LabUser:
        """Open ``notebook`` (a name in the test's folder) in a new browser context.

        Open the next user only after this one is ready (``wait``): two users opening a
        notebook at once each start a kernel. The test's users share a JupyterLab workspace
        (the open tabs, kept by the server) that no other test uses.
        """
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        user = LabUser(name or f"user{len(self.users) + 1}", context, page)
        self.users.append(user)
        workspace = f"{self.server.url}/lab/workspaces/{self.server.name}"
        page.goto(f"{workspace}/tree/{self.server.path(notebook)}?token={self.server.token}")
        if wait:
            user.wait_ready()
        return user

    def save_artifacts(self) -> Path:
        """Screenshots and logs of every user, and the server log, into ``artifacts``."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        for user in self.users:
            try:
                user.screenshot(self.artifacts / f"{user.name}.png")
            except Exception as e:  # a crashed page still has a log worth keeping
                user.log.append(f"screenshot failed: {e}")
            (self.artifacts / f"{user.name}.log").write_text("\n".join(user.log))
        if self.server.log_path.exists():
            shutil.copyfile(self.server.log_path, self.artifacts / "server.log")
        return self.artifacts

    def close(self) -> None:
        for user in self.users:
            try:
                user.context.close()
            except Exception:
                pass
        self.users.clear()
