"""ipywidgets with a real kernel: the widget table, client ↔ kernel changes, Output capture,
buffers through the blob store, restarts, and the widget state in the saved notebook."""

from __future__ import annotations

import json
import subprocess
import sys

import jupyter_client.session
import nbformat
import pytest
from helpers import poll, read_notebook_file, write_notebook
from httpx_ws import aconnect_ws
from test_execution import cell, finished, outputs, text_of

pytestmark = pytest.mark.cocalc(document_cleanup_delay=0.5)

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
SLIDER = "from ipywidgets import IntSlider\ns = IntSlider(value=3); s"
IMAGE = (
    "from ipywidgets import Image\nimage = Image(value=bytes(range(256)) * 4, format='png')\nimage"
)


async def run(nb, cell_id: str) -> dict:
    await nb.run([cell_id])
    await nb.wait_for(lambda n: finished(n, cell_id), timeout=60)
    return cell(nb, cell_id)


def shown_model(record: dict) -> str:
    views = [o["data"][VIEW] for o in outputs(record) if VIEW in (o.get("data") or {})]
    assert len(views) == 1, outputs(record)
    return views[0]["model_id"]


async def test_slider_through_the_table_both_ways_and_restart_clears_it(server, root_dir, live):
    write_notebook(
        root_dir / "nb.ipynb",
        [
            "from ipywidgets import IntSlider\ns = IntSlider(value=3); s",
            "print(s.value)",
            "s.value = 9",
        ],
    )
    nb = await live()
    other = await live()
    slider = shown_model(await run(nb, "cell-0"))
    await other.widgets.wait_for(lambda w: slider in w.models())
    assert other.widgets.state(slider)["value"] == 3
    assert other.widgets.table.identity(slider)["model_name"] == "IntSliderModel"

    nb.widgets.set_value(slider, {"value": 7})
    # the server sent the change to the kernel when it applied it, before relaying it
    await other.widgets.wait_for(lambda w: w.state(slider)["value"] == 7)
    assert text_of(await run(nb, "cell-1")) == "7\n"
    # the kernel's echo of the change is not a new change of the table
    assert nb.widgets.get_one({"model_id": slider, "type": "value"})["data"] == {"value": 7}

    await run(nb, "cell-2")
    await nb.widgets.wait_for(lambda w: w.state(slider)["value"] == 9)
    await other.widgets.wait_for(lambda w: w.state(slider)["value"] == 9)

    await nb.restart()
    await other.widgets.wait_for(lambda w: not w.models())


async def test_output_widget_and_interact_capture_on_the_server(server, root_dir, live):
    write_notebook(
        root_dir / "nb.ipynb",
        [
            "from ipywidgets import Output\nout = Output()\nwith out:\n    print('captured')\n"
            "print('in the cell')\nout",
            "from ipywidgets import interact\n@interact\ndef f(x=5):\n    print(x * 10)",
        ],
    )
    nb = await live()
    record = await run(nb, "cell-0")
    assert text_of(record) == "in the cell\n"
    out = shown_model(record)
    await nb.widgets.wait_for(lambda w: w.state(out).get("outputs"))
    assert nb.widgets.state(out)["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "captured\n"}
    ]

    record = await run(nb, "cell-1")
    assert text_of(record) == ""  # interact's print went into its Output widget
    box = shown_model(record)
    children = [c.removeprefix("IPY_MODEL_") for c in nb.widgets.state(box)["children"]]
    slider = next(c for c in children if "value" in nb.widgets.state(c))
    output = next(c for c in children if c != slider)

    def printed(w) -> str:
        return "".join(o.get("text", "") for o in w.state(output).get("outputs") or [])

    await nb.widgets.wait_for(lambda w: printed(w) == "50\n")
    nb.widgets.set_value(slider, {"value": 7})
    await nb.widgets.wait_for(lambda w: printed(w) == "70\n")  # cleared, then printed again
    assert text_of(cell(nb, "cell-1")) == ""


async def test_image_bytes_arrive_through_the_blob_store(server, root_dir, live):
    write_notebook(
        root_dir / "nb.ipynb",
        [IMAGE],
    )
    nb = await live()
    image = shown_model(await run(nb, "cell-0"))
    await nb.widgets.wait_for(lambda w: w.buffers(image) if image in w.models() else None)
    (sha1,) = nb.widgets.buffers(image).values()
    assert list(nb.widgets.buffers(image)) == ['["value"]']
    assert await nb.widgets.buffer(sha1) == bytes(range(256)) * 4
    assert "value" not in nb.widgets.state(image)  # the bytes are not in the shared document


async def test_saved_notebook_carries_the_widget_state_and_is_signed(
    server, jp_serverapp, root_dir, live
):
    path = root_dir / "nb.ipynb"
    write_notebook(
        path,
        [
            "from ipywidgets import IntSlider, VBox\ns = IntSlider(value=3)\nVBox([s])",
            "s.value = 4",
        ],
    )
    nb = await live()
    box = shown_model(await run(nb, "cell-0"))
    await run(nb, "cell-1")
    await nb.widgets.wait_for(lambda w: any(w.state(m).get("value") == 4 for m in w.models()))

    def saved_state():
        saved = read_notebook_file(path)
        widgets = saved and saved.metadata.get("widgets", {}).get(STATE)
        models = (widgets or {}).get("state", {})
        values = [m["state"].get("value") for m in models.values()]
        return saved if box in models and 4 in values else None

    saved = await poll(_async(saved_state), timeout=30)
    nbformat.validate(saved)
    state = saved.metadata.widgets[STATE]
    assert state["version_major"] == 2
    assert state["state"][box]["model_name"] == "VBoxModel"
    # every model the box needs is saved with it
    children = [c.removeprefix("IPY_MODEL_") for c in state["state"][box]["state"]["children"]]
    assert all(child in state["state"] for child in children)

    # the outputs the server produced are trusted: the file is signed
    assert jp_serverapp.contents_manager.notary.check_signature(saved)

    html = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--stdout", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert STATE in html and json.dumps(box) in html


def rich_cell(source: str, cell_id: str = "cell-0") -> dict:
    """A code cell whose output (HTML) needs trust to be rendered fully."""
    html = nbformat.v4.new_output("display_data", data={"text/html": "<b>x</b>"})
    return nbformat.v4.new_code_cell(source, id=cell_id, outputs=[html])


async def test_import_keeps_the_signature_state(server, jp_serverapp, root_dir):
    # (different sources: a signature is the hash of the content)
    signed = write_notebook(root_dir / "signed.ipynb", [rich_cell("1 + 1")])
    write_notebook(root_dir / "unsigned.ipynb", [rich_cell("2 + 2")])
    forged = write_notebook(root_dir / "forged.ipynb", [rich_cell("3 + 3")])
    forged.cells[0].metadata["trusted"] = True  # a trusted flag in the file is not believed
    nbformat.write(forged, str(root_dir / "forged.ipynb"))
    write_notebook(root_dir / "plain.ipynb", ["4 + 4"])  # nothing that needs trust
    jp_serverapp.contents_manager.notary.sign(nbformat.read(str(root_dir / "signed.ipynb"), 4))
    assert signed.cells

    expected = {"signed": True, "unsigned": False, "forged": False, "plain": True}
    for name, trusted in expected.items():
        async with server.ynotebook(f"{name}.ipynb") as lab:
            assert lab.ycells[0]["metadata"]["trusted"] is trusted, name


async def test_cells_the_server_runs_are_trusted_for_jupyterlab(server, root_dir, live):
    write_notebook(
        root_dir / "nb.ipynb", [rich_cell("from IPython.display import HTML\nHTML('<i>y</i>')")]
    )
    nb = await live()
    async with server.ynotebook("nb.ipynb") as lab:
        assert lab.ycells[0]["metadata"]["trusted"] is False  # an unsigned file's output
        await run(nb, "cell-0")
        await poll(_async(lambda: lab.ycells[0]["metadata"].get("trusted") is True))


def _async(check):
    async def condition():
        return check()

    return condition


async def test_a_jupyterlab_users_own_change_reaches_the_table(server, root_dir, live):
    """A JupyterLab tab changes a widget over its own kernel websocket: the kernel's echo to
    everyone else is merged into the table."""
    write_notebook(
        root_dir / "nb.ipynb", ["from ipywidgets import IntSlider\ns = IntSlider(value=3); s"]
    )
    nb = await live()
    slider = shown_model(await run(nb, "cell-0"))
    sessions = (await server.http.get("/api/sessions")).json()
    kernel_id = next(s["kernel"]["id"] for s in sessions if s["path"] == "nb.ipynb")
    session = jupyter_client.session.Session()
    msg = session.msg(
        "comm_msg",
        {
            "comm_id": slider,
            "data": {"method": "update", "state": {"value": 5}, "buffer_paths": []},
        },
    )
    msg["channel"] = "shell"
    url = server.ws_url(f"/api/kernels/{kernel_id}/channels?session_id={session.session}")
    async with aconnect_ws(url, server.http) as ws:
        await ws.send_text(json.dumps(msg, default=str))
        await nb.widgets.wait_for(lambda w: w.state(slider)["value"] == 5)
