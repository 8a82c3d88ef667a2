"""Outputs changed by JupyterLab clients reach the table, the history and the file: clearing
them (as ``notebook:clear-all-cell-outputs`` does through ``@jupyter/ydoc``), and outputs
written as plain JSON values (as ``jupyter-nbmodel-client`` writes them). So do the other cell
edits that replace a whole value: a cell's type (a new cell with the old id) and its
attachments."""

from __future__ import annotations

import json

import nbformat
from helpers import eventually, read_notebook_file, write_notebook
from pycrdt import Array

from jupyter_cocalc_sync.sync.values import from_crdt

NB = "/api/cocalc-sync/notebooks/nb.ipynb"


def cell_with_output(cell_id: str, source: str, text: str) -> dict:
    cell = nbformat.v4.new_code_cell(source, id=cell_id, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return cell


async def records(server) -> dict[str, dict]:
    response = await server.http.get(NB)
    response.raise_for_status()
    return {r["id"]: r for r in response.json()["records"] if r["type"] == "cell"}


async def versions(server) -> int:
    response = await server.http.get(f"{NB}/history")
    response.raise_for_status()
    return len(response.json()["versions"])


async def saved(root_dir, predicate) -> nbformat.NotebookNode:
    def check():
        nb = read_notebook_file(root_dir / "nb.ipynb")
        return nb if nb is not None and predicate(nb) else None

    return await eventually(check, timeout=15)


async def rest_shows(server, predicate) -> dict[str, dict]:
    async def check():
        cells = await records(server)
        return cells if predicate(cells) else None

    from helpers import poll

    return await poll(check)


async def test_clear_all_outputs_from_jupyterlab_reaches_table_history_and_file(server, root_dir):
    write_notebook(
        root_dir / "nb.ipynb",
        [cell_with_output("a", "print(1)", "1\n"), cell_with_output("b", "print(2)", "2\n")],
    )
    async with server.ynotebook("nb.ipynb") as lab1, server.ynotebook("nb.ipynb") as lab2:
        assert all(len(c["outputs"]) == 1 for c in lab1.ycells)
        before = await versions(server)
        # NotebookActions.clearAllOutputs: every code cell's outputs cleared and its execution
        # count set to null, in one transaction per cell
        for ycell in lab1.ycells:
            with lab1.ydoc.transaction():
                ycell["outputs"].clear()
                ycell["execution_count"] = None
        await eventually(lambda: all(len(c["outputs"]) == 0 for c in lab2.ycells), lab2.ydoc)
        cells = await rest_shows(
            server, lambda c: not c["a"].get("output") and not c["b"].get("output")
        )
        assert cells["a"].get("exec_count") is None and cells["b"].get("exec_count") is None
        assert await versions(server) > before
    nb = await saved(root_dir, lambda nb: all(not c.outputs for c in nb.cells))
    assert [c.execution_count for c in nb.cells] == [None, None]


async def test_clear_one_cell_and_remove_one_output_from_jupyterlab(server, root_dir):
    two = cell_with_output("b", "print(2); print(3, file=sys.stderr)", "2\n")
    two.outputs.append(nbformat.v4.new_output("stream", name="stderr", text="3\n"))
    write_notebook(root_dir / "nb.ipynb", [cell_with_output("a", "print(1)", "1\n"), two])
    async with server.ynotebook("nb.ipynb") as lab:
        # Clear Output of one cell
        lab.ycells[0]["outputs"].clear()
        await rest_shows(server, lambda c: not c["a"].get("output"))
        # one output removed (YCodeCell.updateOutputs(0, 1, []))
        outputs: Array = lab.ycells[1]["outputs"]
        del outputs[0]
        cells = await rest_shows(server, lambda c: len(c["b"].get("output") or {}) == 1)
        assert cells["b"]["output"]["0"]["name"] == "stderr"
    nb = await saved(root_dir, lambda nb: not nb.cells[0].outputs and len(nb.cells[1].outputs) == 1)
    assert nb.cells[1].outputs[0].name == "stderr"


async def test_outputs_written_as_plain_json_values_reach_the_table_and_back(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    async with server.ynotebook("nb.ipynb") as nbmodel, server.ynotebook("nb.ipynb") as lab:
        # jupyter-nbmodel-client appends outputs as plain dicts, not Maps
        output = {"output_type": "stream", "name": "stdout", "text": "plain\n"}
        nbmodel.ycells[0]["outputs"].append(output)
        await eventually(lambda: len(lab.ycells[0]["outputs"]) == 1, lab.ydoc)
        cells = await rest_shows(server, lambda c: bool(c["cell-0"].get("output")))
        assert cells["cell-0"]["output"]["0"]["text"] == "plain\n"
        # and a table change to that cell projects over the plain value without failing
        response = await server.http.post(
            f"{NB}/records",
            content=json.dumps({"set": [{"type": "cell", "id": "cell-0", "exec_count": 3}]}),
        )
        response.raise_for_status()
        await eventually(lambda: nbmodel.ycells[0]["execution_count"] == 3, nbmodel.ydoc)
        # clearing them again
        nbmodel.ycells[0]["outputs"].clear()
        await rest_shows(server, lambda c: not c["cell-0"].get("output"))
    await saved(root_dir, lambda nb: not nb.cells[0].outputs and nb.cells[0].execution_count == 3)


async def test_metadata_written_as_a_plain_json_value(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["x = 1"])
    async with server.ynotebook("nb.ipynb") as client, server.ynotebook("nb.ipynb") as lab:
        client.ycells[0]["metadata"] = {"tags": ["keep"], "custom": 1}
        cells = await rest_shows(server, lambda c: c["cell-0"].get("tags") == {"keep": True})
        assert cells["cell-0"]["metadata"] == {"custom": 1}
        await eventually(lambda: from_crdt(lab.ycells[0]["metadata"]).get("custom") == 1, lab.ydoc)
        # a later table change to the cell's metadata replaces the plain value with a Map
        response = await server.http.post(
            f"{NB}/records",
            content=json.dumps({"set": [{"type": "cell", "id": "cell-0", "metadata": {"k": 2}}]}),
        )
        response.raise_for_status()
        await eventually(lambda: from_crdt(client.ycells[0]["metadata"]).get("k") == 2, client.ydoc)


async def test_cell_type_changed_in_jupyterlab_reaches_table_history_and_file(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", [cell_with_output("a", "x = 1", "1\n"), "y = 2"])
    async with server.ynotebook("nb.ipynb") as lab1, server.ynotebook("nb.ipynb") as lab2:

        def change_type(index: int, cell_type: str) -> None:
            # NotebookActions.changeCellType: the cell is deleted and a new one of the new
            # type inserted with the same id, source and metadata, in one transaction
            old = from_crdt(lab1.ycells[index])
            with lab1.ydoc.transaction():
                del lab1.ycells[index]
                new = {k: old[k] for k in ("id", "source", "metadata")}
                lab1.ycells.insert(index, lab1.create_ycell({**new, "cell_type": cell_type}))

        before = await versions(server)
        change_type(0, "markdown")
        await eventually(lambda: lab2.ycells[0]["cell_type"] == "markdown", lab2.ydoc)
        cells = await rest_shows(server, lambda c: c["a"].get("cell_type") == "markdown")
        assert cells["a"]["input"] == "x = 1"
        assert "output" not in cells["a"] and "exec_count" not in cells["a"]
        assert await versions(server) > before
        nb = await saved(root_dir, lambda nb: nb.cells[0].cell_type == "markdown")
        assert nb.cells[0].source == "x = 1" and "outputs" not in nb.cells[0]

        change_type(0, "raw")
        await rest_shows(server, lambda c: c["a"].get("cell_type") == "raw")
        change_type(1, "markdown")
        await rest_shows(server, lambda c: c["cell-1"].get("cell_type") == "markdown")
        change_type(1, "code")  # and back
        await rest_shows(server, lambda c: c["cell-1"].get("cell_type") == "code")
        assert [c["cell_type"] for c in lab2.ycells] == ["raw", "code"]
    # the file once an autosave caught up with the last change (an earlier autosave can have
    # written the raw cell before the second cell went back to code)
    expected = [("raw", "x = 1"), ("code", "y = 2")]
    nb = await saved(root_dir, lambda nb: [(c.cell_type, c.source) for c in nb.cells] == expected)
    assert [(c.cell_type, c.source) for c in nb.cells] == expected


async def test_attachment_removed_in_jupyterlab_leaves_the_table_and_file(server, root_dir):
    png = {"image/png": "iVBORw0KGgo="}
    markdown = nbformat.v4.new_markdown_cell("![a](attachment:a.png)", id="m")
    write_notebook(root_dir / "nb.ipynb", [markdown])
    async with server.ynotebook("nb.ipynb") as lab:
        # AttachmentsModel.set / .remove: the cell's whole attachments, as a plain JSON value
        lab.ycells[0]["attachments"] = {"a.png": png, "b.png": png}
        both = {"a.png", "b.png"}
        await rest_shows(server, lambda c: set(c["m"].get("attachments") or {}) == both)
        # saving in JupyterLab removes the attachments the source no longer refers to
        lab.ycells[0]["attachments"] = {"a.png": png}
        await rest_shows(server, lambda c: set(c["m"].get("attachments") or {}) == {"a.png"})
        del lab.ycells[0]["attachments"]
        await rest_shows(server, lambda c: "attachments" not in c["m"])
    await saved(root_dir, lambda nb: "attachments" not in nb.cells[0])
