"""``jupyter-cocalc-sync-demo``: JupyterLab on a copy of the demo notebook, in a folder of its own.

The example notebook ships inside the package; running it changes it (outputs, a million-line
flood) and the server keeps its store next to it, so the demo runs on a copy in a scratch
folder (by default ``jupyter-cocalc-sync-demo`` in the system's temporary folder, kept between
runs: a second run finds the notebook, its outputs and its history where the first left them).
Every argument it does not know goes to ``jupyter lab`` (e.g. ``--allow-root``, ``--port``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

NOTEBOOK = Path(__file__).with_name("demo.ipynb")
DEFAULT_FOLDER = Path(tempfile.gettempdir()) / "jupyter-cocalc-sync-demo"


def prepare(folder: Path) -> Path:
    """``folder`` with the demo notebook in it (copied if it is not there yet)."""
    folder.mkdir(parents=True, exist_ok=True)
    notebook = folder / NOTEBOOK.name
    if not notebook.exists():
        shutil.copyfile(NOTEBOOK, notebook)
    return notebook


def lab_command(folder: Path, notebook: Path, lab_args: Sequence[str]) -> list[str]:
    """``jupyter lab`` serving ``folder``, opening ``notebook``, with ``lab_args``."""
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={folder}",
        *lab_args,
        str(notebook),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="jupyter-cocalc-sync-demo",
        description="Start JupyterLab with jupyter-cocalc-sync on a copy of the demo notebook. "
        "Other arguments go to jupyter lab.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_FOLDER,
        help=f"the folder the demo runs in (default: {DEFAULT_FOLDER})",
    )
    args, lab_args = parser.parse_known_args(argv)
    if importlib.util.find_spec("jupyterlab") is None:
        parser.exit(1, "JupyterLab is not installed: pip install 'jupyter-cocalc-sync[lab]'\n")
    folder = args.dir.resolve()
    notebook = prepare(folder)
    print(f"jupyter-cocalc-sync demo: {notebook} (a copy; the store is kept next to it)")
    command = lab_command(folder, notebook, lab_args)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
