"""OutputFormats: what JupyterLab is shown for a table output, and the way back."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_cocalc_sync.outputs.blobs import BlobStore
from jupyter_cocalc_sync.outputs.formats import INPUT_REQUEST_MIME, MORE_OUTPUT_MIME, OutputFormats
from jupyter_cocalc_sync.outputs.overflow import MoreOutputStore
from jupyter_cocalc_sync.store import SQLiteWorker


@pytest.fixture
def formats(tmp_path):
    """Rendering and ingesting touch neither store's tables."""
    worker = SQLiteWorker(tmp_path / "store.db")
    overflow = MoreOutputStore(worker, max_bytes=1 << 20)
    yield OutputFormats(BlobStore(worker), overflow, base_url="/base/")
    worker.close()


@pytest.mark.parametrize("password", [False, True])
def test_a_pending_input_is_shown_as_the_input_box_and_comes_back_as_itself(
    formats: OutputFormats, password: bool
) -> None:
    request = {"output_type": "input_request", "prompt": "Name: ", "password": password}
    shown = formats.render("dir/nb.ipynb", "c1", request)
    assert shown["output_type"] == "display_data"
    assert shown["data"][INPUT_REQUEST_MIME] == {
        "path": "dir/nb.ipynb",
        "cell_id": "c1",
        "prompt": "Name: ",
        "password": password,
    }
    assert shown["data"]["text/plain"] == "Name: (waiting for input)"
    # JupyterLab writes back what it was shown when it rewrites a cell's outputs
    assert formats.ingest(shown, "doc") == request


def test_the_marker_is_the_more_output_view_with_the_url_for_other_frontends(
    formats: OutputFormats,
) -> None:
    shown = formats.render("dir/nb.ipynb", "c1", {"more_output": True})
    assert shown["data"][MORE_OUTPUT_MIME] == {"path": "dir/nb.ipynb", "cell_id": "c1"}
    url = "/base/api/cocalc-sync/notebooks/dir/nb.ipynb/cells/c1/more_output"
    assert shown["data"]["text/plain"].endswith(f"GET {url}")
    assert formats.ingest(shown, "doc") == {"more_output": True}


def test_an_ordinary_output_is_shown_as_it_is(formats: OutputFormats) -> None:
    output: dict[str, Any] = {"output_type": "stream", "name": "stdout", "text": "hi\n"}
    assert formats.render("nb.ipynb", "c1", output) == output
    assert formats.ingest(output, "doc") == output
