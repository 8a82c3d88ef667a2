"""What exporting to PDF needs from the machine: a missing tool is an
``ExportToolMissingError`` naming it.

nbconvert's ``pdf`` runs ``xelatex``; its ``webpdf`` (``webpdf.py``) prints with the Chromium
installed on the system, through Playwright. This module does not import nbconvert (a second
of imports and ~11 MB that a server which never exports does not pay for).
"""

from __future__ import annotations

import importlib.util
import shutil

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


__all__ = ["CHROMIUM_ARGS", "check_tools", "system_chromium"]
