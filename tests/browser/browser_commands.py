"""What a person does to a notebook in JupyterLab, as ``LabUser`` methods: menus, context
menus, command-mode keys, dialogs, the property inspector, dropping a file on a cell.

Each method acts the way a user would (a click, a key) and waits for the page to take it in
(the cell selected, the menu open, the editor shown) before it returns; what the action changes
in the notebook is for the test to wait on.
"""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

#: the right sidebar's tab of the property inspector (notebook tools)
PROPERTY_INSPECTOR_TAB = ".jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id='jp-property-inspector']"
#: the JSON editor of the active cell's metadata (property inspector → Advanced Tools)
CELL_METADATA_EDITOR = "#jp-property-inspector .jp-CellMetadataEditor .jp-JSONEditor"

#: a DataTransfer holding one file, as the browser builds it for a drag from the desktop
DATA_TRANSFER_JS = """
([name, type, bytes]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(bytes)], name, {type}));
    return transfer;
}
"""


def _exactly(label: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(label)}$")


class NotebookCommands:
    """The commands of ``LabUser`` (mixed into it: it provides the page and the locators)."""

    page: Page

    def cell(self, n: int) -> Locator:
        raise NotImplementedError

    def editor(self, n: int) -> Locator:
        raise NotImplementedError

    @property
    def notebook(self) -> Locator:
        raise NotImplementedError

    # -- command mode ------------------------------------------------------------------------
    def select_cell(self, n: int) -> None:
        """Click cell ``n``'s prompt: it becomes the active cell, in command mode."""
        self.cell(n).locator(".jp-InputPrompt").click()
        expect(self.cell(n)).to_have_class(re.compile(r"\bjp-mod-active\b"))
        expect(self.notebook).to_have_class(re.compile(r"\bjp-mod-commandMode\b"))

    def end_undo_step(self) -> None:
        """What a pause of Yjs's undo capture time (500 ms) does: the notebook's next change is
        an undo step of its own. Changes closer together are one step, in stock JupyterLab
        too: Z after quick edits undoes them all."""
        self.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel"
            ".undoManager.stopCapturing()"
        )

    def press_on_cell(self, n: int, *keys: str) -> None:
        """Select cell ``n`` and press ``keys`` one after the other in command mode (``"m"``,
        ``"Shift+M"``, ``"Control+Shift+ArrowUp"``, ``"d", "d"``)."""
        self.select_cell(n)
        for key in keys:
            self.page.keyboard.press(key)

    def split_cell(self, n: int, line: int) -> None:
        """Ctrl+Shift+- with the cursor at the start of line ``line`` (from 0) of cell ``n``."""
        self.editor(n).click()
        self.page.keyboard.press("Control+Home")
        for _ in range(line):
            self.page.keyboard.press("ArrowDown")
        self.page.keyboard.press("Home")
        self.page.keyboard.press("Control+Shift+Minus")

    def edit_markdown(self, n: int) -> None:
        """Enter on Markdown cell ``n``: its editor shows (unrendered), the cursor at its end."""
        self.select_cell(n)
        self.page.keyboard.press("Enter")
        expect(self.editor(n)).to_be_visible()
        self.editor(n).click()
        self.page.keyboard.press("Control+End")

    # -- menus and dialogs -------------------------------------------------------------------
    def _menu_item(self, label: str) -> Locator:
        """The item ``label`` of the menu open last (a submenu opens over its parent)."""
        menu = self.page.locator(".lm-Menu").last
        return menu.locator(".lm-Menu-item").filter(
            has=self.page.locator(".lm-Menu-itemLabel", has_text=_exactly(label))
        )

    def menu(self, title: str, item: str) -> None:
        """Click ``title`` in the menu bar, then its item ``item`` (the label as shown)."""
        self.page.locator(".lm-MenuBar-item", has_text=_exactly(title)).click()
        self._menu_item(item).click()

    def cell_context_menu(self, n: int, item: str) -> None:
        """Select cell ``n``, right-click it and click ``item`` in its context menu."""
        self.select_cell(n)
        self.cell(n).click(button="right")
        self._menu_item(item).click()

    def accept_dialog(self, button: str) -> None:
        """Click the dialog's accept button, which reads ``button``; wait until it is gone."""
        dialog = self.page.locator(".jp-Dialog")
        dialog.locator("button.jp-mod-accept", has_text=_exactly(button)).click()
        expect(dialog).to_have_count(0)

    # -- property inspector ------------------------------------------------------------------
    def _cell_metadata_editor(self, n: int) -> Locator:
        """Cell ``n`` selected and its metadata editor in the property inspector shown."""
        self.select_cell(n)
        if not self.page.locator("#jp-property-inspector").is_visible():
            self.page.locator(PROPERTY_INSPECTOR_TAB).click()
        editor = self.page.locator(CELL_METADATA_EDITOR)
        if not editor.is_visible():
            self.page.locator("#jp-property-inspector .jp-Collapser-title").filter(
                has_text=_exactly("Advanced Tools")
            ).click()
        expect(editor).to_be_visible()
        return editor

    def cell_metadata_shown(self, n: int) -> dict[str, Any]:
        """Cell ``n``'s metadata as the property inspector shows it."""
        lines = self._cell_metadata_editor(n).locator(".cm-line").all_text_contents()
        text = "\n".join(lines)
        value: dict[str, Any] = json.loads(text)
        return value

    def set_cell_metadata(self, n: int, metadata: dict[str, Any]) -> None:
        """Replace cell ``n``'s metadata in the property inspector's JSON editor (select all,
        paste the JSON) and commit it with the editor's check button."""
        editor = self._cell_metadata_editor(n)
        editor.locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(json.dumps(metadata, indent=4))
        commit = editor.locator("[title='Commit changes to data']")
        expect(commit).to_be_visible()  # shown once the text parses and differs
        commit.click()
        expect(commit).to_be_hidden()

    # -- files -------------------------------------------------------------------------------
    def drop_file(self, n: int, name: str, mime_type: str, data: bytes) -> None:
        """Drop a file (as from the desktop) onto cell ``n``'s editor, where the cursor is."""
        transfer = self.page.evaluate_handle(DATA_TRANSFER_JS, [name, mime_type, list(data)])
        try:
            self.editor(n).dispatch_event("drop", {"dataTransfer": transfer})
        finally:
            transfer.dispose()
