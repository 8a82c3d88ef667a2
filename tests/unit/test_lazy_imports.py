"""What a server imports when it starts: nbconvert only once a notebook is exported (it is a
second of imports and ~11 MB of memory in every server, most of which never export)."""

from __future__ import annotations

import subprocess
import sys

STARTUP = """
import sys
import jupyter_cocalc_sync.app
from jupyter_cocalc_sync.export.exporter import NotebookExporter
print(sorted(name for name in sys.modules if name.split(".")[0] == "nbconvert"))
"""


def test_the_extension_and_its_exporter_load_without_nbconvert() -> None:
    # (a fresh interpreter: this one has imported nbconvert for other tests)
    result = subprocess.run(
        [sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
