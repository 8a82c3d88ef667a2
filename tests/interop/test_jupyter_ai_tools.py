"""jupyter-ai-tools' notebook functions, with no browser open: they find jupyter_server_ydoc
enabled, take their collaboration path, and edit through the server as a collaborator."""

from __future__ import annotations

import pytest
from agreement import authors, everyone_agrees
from helpers import write_notebook
from jupyter_ai_tools.toolkits import notebook as tools
from jupyter_ai_tools.utils import rtc_available

pytestmark = pytest.mark.cocalc(document_cleanup_delay=30)


async def test_notebook_functions_edit_through_the_server(server, root_dir, jp_serverapp):
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2"])
    await server.session("nb.ipynb")  # opened in JupyterLab once, some day: the file has an id
    assert rtc_available()  # else every function below drives a browser tab (there is none)

    await tools.add_cell("nb.ipynb", content="c = 3", cell_id="cell-1")
    await tools.insert_cell("nb.ipynb", content="# Title", insert_index=0, cell_type="markdown")
    await tools.edit_cell("nb.ipynb", "cell-0", content="a = 10")
    await tools.delete_cell("nb.ipynb", "cell-1")
    expected = ["# Title", "a = 10", "c = 3"]
    await everyone_agrees(server, root_dir, "nb.ipynb", expected)

    # the reading functions read the saved file: what the edits made
    markdown = await tools.read_notebook("nb.ipynb")
    assert "a = 10" in markdown and "b = 2" not in markdown
    cell, index = await tools.read_cell_json("nb.ipynb", "cell-0")
    assert ("".join(cell["source"]), index) == ("a = 10", 1)
    assert "extension:jupyter_ai_tools" in await authors(server, jp_serverapp, "nb.ipynb")
