"""``SystemChromiumPDFExporter``: nbconvert's ``webpdf`` (same template, same page setup)
printed by the Chromium installed on the system, through Playwright (nbconvert's own drives
Playwright's Chromium build, which a server often does not have and cannot download).

Imported only when a notebook is exported (nbconvert is a second of imports and ~11 MB).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nbconvert.exporters import WebPDFExporter

from .tools import CHROMIUM_ARGS, system_chromium


class SystemChromiumPDFExporter(WebPDFExporter):
    """nbconvert's web PDF, printed by the system's Chromium (runs in a worker thread)."""

    def run_playwright(self, html: str) -> bytes:
        from playwright.sync_api import sync_playwright

        with tempfile.TemporaryDirectory(prefix="cocalc-webpdf-") as folder:
            page_file = Path(folder) / "notebook.html"
            page_file.write_text(html, encoding="utf-8")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=system_chromium(), args=[*CHROMIUM_ARGS, *self.browser_args]
                )
                try:
                    page = browser.new_page()
                    page.emulate_media(media="print")
                    page.goto(page_file.as_uri(), wait_until="networkidle")
                    page.wait_for_timeout(self.page_render_timeout)
                    return page.pdf(print_background=True)
                finally:
                    browser.close()


__all__ = ["SystemChromiumPDFExporter"]
