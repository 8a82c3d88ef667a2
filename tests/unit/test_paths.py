"""API path checks (``paths.check_api_path``)."""

from __future__ import annotations

import os

import pytest

from jupyter_cocalc_sync.errors import PathOutsideRootError
from jupyter_cocalc_sync.paths import check_api_path


def test_check_api_path_unit():
    root = os.getcwd()
    assert check_api_path(root, "a/./b.ipynb") == "a/b.ipynb"
    for bad in ("../x", "/etc/passwd", "a/../../x", "a\x00b", "", "C:\\x"):
        with pytest.raises(PathOutsideRootError):
            check_api_path(root, bad)
