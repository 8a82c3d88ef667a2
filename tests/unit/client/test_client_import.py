"""The client and the package's top level import no server: the client runs where jupyter_server
is not installed, and ``import jupyter_cocalc_sync`` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: what the server needs and the client must not load; nbformat too: it loads jsonschema, whose
#: format grammars take seconds of CPU to build (the client never reads or writes a file)
SERVER_MODULES = ("tornado", "jupyter_server", "jupyter_client", "zmq", "nbconvert", "nbformat")


@pytest.mark.parametrize("module", ["jupyter_cocalc_sync", "jupyter_cocalc_sync.client"])
def test_importing_loads_no_server(module):
    # a fresh interpreter: this test process has the server loaded already
    code = (
        f"import sys, {module}\nprint(' '.join(m for m in {SERVER_MODULES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == []


def test_the_lazy_attributes_and_the_extension_hook_still_load():
    code = (
        "import jupyter_cocalc_sync as j\n"
        "from jupyter_cocalc_sync.app import CocalcSync\n"
        "from jupyter_cocalc_sync.sync.table import SyncDB\n"
        "assert j.CocalcSync is CocalcSync and j.SyncDB is SyncDB\n"
        "assert j._jupyter_server_extension_points()[0]['app'] is CocalcSync\n"
        "print('ok')"
    )
    # the whole server is imported: seconds of CPU, a minute or more on a crowded machine
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=True
    )
    assert result.stdout.strip() == "ok"


def test_without_the_client_extra_the_error_names_it():
    """``wsproto`` hidden (a ``None`` entry in ``sys.modules`` makes its import fail)."""
    code = (
        "import sys\n"
        "sys.modules['wsproto'] = None\n"
        "try:\n"
        "    import jupyter_cocalc_sync.client\n"
        "except ModuleNotFoundError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'jupyter-cocalc-sync[client]'" in result.stdout
    assert "wsproto" in result.stdout
