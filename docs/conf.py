"""Sphinx configuration: ``sphinx-build -W --keep-going -b html docs docs/_build/html``."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# the extensions of this site, the package itself (also when it is not installed) and the
# benchmark report's number format
sys.path[:0] = [str(DOCS / "_ext"), str(ROOT), str(ROOT / "bench")]

from jupyter_cocalc_sync import __version__  # noqa: E402 - needs the paths above

project = "jupyter-cocalc-sync"
author = "the jupyter-cocalc-sync developers"
copyright = "the jupyter-cocalc-sync developers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "benchmark_tables",
    "code_tables",
    "config_tables",
    "suite_refs",
]

# What the generated pages read from the code: each by one import path, here and nowhere else
# (when a module moves, this is the one place to change).
cocalc_package = "jupyter_cocalc_sync"
cocalc_config_classes = [
    "jupyter_cocalc_sync.app.CocalcSync",
    "jupyter_cocalc_sync.pool.kernel_pool.KernelPool",
]
cocalc_actions_class = "jupyter_cocalc_sync.action_api.NotebookActionsAPI"
cocalc_benchmark_results = "benchmarks/results.json"
cocalc_tests_dir = "../tests"

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings: list[str] = []

html_theme = "pydata_sphinx_theme"
html_title = "jupyter-cocalc-sync"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
# no left sidebar: the pages are few (the top bar lists them), the tables need the width
html_sidebars: dict[str, list[str]] = {"**": []}
html_static_path = ["_static"]
html_css_files = ["tables.css"]
