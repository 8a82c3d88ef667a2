"""What exporting to PDF needs from the machine, and a web PDF exporter for the system Chromium.

nbconvert's ``pdf`` runs ``xelatex``; its ``webpdf`` drives Playwright's own Chromium build,
which a server often does not have (and cannot download). ``SystemChromiumPDFExporter`` is
nbconvert's ``webpdf`` (same template, same page setup) printed by the Chromium installed on
the system, through Playwright. A missing tool is an ``ExportToolMissingError`` naming it.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from nbconvert.exporters import WebPDFExporter

from ..errors import ExportToolMissingError

#: Chromium executables looked for on PATH, in order
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def system_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def check_tools(to: str) -> None:
    """``ExportToolMissingError`` if exporting to ``to`` needs a program this machine lacks."""
    if to == "pdf" and shutil.which("xelatex") is None:
        raise ExportToolMissingError(
            "to=pdf needs xelatex (TeX Live, e.g. apt-get install texlive-xetex), which is "
            "not installed on this server; to=webpdf or to=html work without it"
        )
    if to == "webpdf":
        missing = []
        if importlib.util.find_spec("playwright") is None:
            missing.append("playwright (pip install playwright)")
        if system_chromium() is None:
            missing.append(f"chromium (one of {', '.join(CHROMIUM_NAMES)} on PATH)")
        if missing:
            raise ExportToolMissingError(
                f"to=webpdf needs {' and '.join(missing)}, not found on this server"
            )


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


__all__ = ["SystemChromiumPDFExporter", "check_tools", "system_chromium"]
