"""Outputs from real kernels: floods, progress bars, images in the blob store, SVG."""

from __future__ import annotations

import base64
import hashlib
import sqlite3

import nbformat
import pytest
from helpers import eventually, png_bytes, read_notebook_file, write_notebook
from pycrdt import Map

NB = "/api/cocalc-sync/notebooks/nb.ipynb"


def record(nb, cell_id):
    return nb.get_one({"type": "cell", "id": cell_id}) or {}


def ordered(output: dict | None) -> list[dict]:
    output = output or {}
    return [output[k] for k in sorted(output, key=int)]


def stream_text(messages: list[dict]) -> str:
    return "".join(m.get("text", "") for m in messages if m.get("output_type") == "stream")


def done(nb, cell_id):
    r = record(nb, cell_id)
    return r.get("state") == "idle" and r.get("end") is not None


@pytest.mark.cocalc(max_more_output_bytes=200_000)
async def test_past_the_overflow_budget_head_and_tail_are_kept_with_exact_counts(
    server, root_dir, live
):
    write_notebook(root_dir / "nb.ipynb", ["for i in range(200000):\n    print(i)"])
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_for(lambda n: done(n, "cell-0"), timeout=120)
    shown = stream_text(ordered(record(nb, "cell-0")["output"]))
    more = await nb.more_output("cell-0")
    assert more["truncated"] > 0
    head, tail = more["messages"][0]["text"], more["messages"][-1]["text"]
    everything = "".join(f"{i}\n" for i in range(200000))
    assert everything.startswith(shown + head) and everything.endswith(tail)
    assert len(shown) + len(head) + more["discarded"] + len(tail) == len(everything)

    def saved():
        file = read_notebook_file(root_dir / "nb.ipynb")
        done_saving = file is not None and file.cells[0].outputs
        return (
            file
            if done_saving and file.cells[0].outputs[-1].get("text", "").endswith("199999\n")
            else None
        )

    file = await eventually(saved, timeout=20)
    nbformat.validate(file)
    texts = [o.get("text", "") for o in file.cells[0].outputs]
    assert any("characters in" in t and "dropped" in t for t in texts)


async def test_a_progress_bar_of_10000_updates_stores_one_line(server, root_dir, live):
    code = (
        "import sys\nfor i in range(10000):\n"
        "    print(f'\\r{i+1:5d}/10000', end='', file=sys.stderr, flush=True)\n"
        "print(file=sys.stderr)"
    )
    write_notebook(root_dir / "nb.ipynb", [code])
    nb = await live()
    await nb.run(["cell-0"])
    await nb.wait_for(lambda n: done(n, "cell-0"), timeout=120)
    outputs = ordered(record(nb, "cell-0")["output"])
    assert outputs == [{"output_type": "stream", "name": "stderr", "text": "10000/10000\n"}]


@pytest.mark.cocalc(blob_threshold=4096)
async def test_one_png_in_50_cells_is_stored_once_and_svg_is_untouched(
    server, root_dir, live, tmp_path
):
    png = png_bytes()
    assert len(png) > 4096
    b64 = base64.b64encode(png).decode()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        '<rect width="10" height="10" fill="#c0ffee"/><text>é &amp; 😀</text></svg>'
    )
    cells = [
        "from IPython.display import Image, display\nimport base64\n"
        f"PNG = base64.b64decode({b64!r})\nSVG_TEXT = {svg!r}"
    ]
    cells += ["display(Image(data=PNG))"] * 50
    cells += ["display({'image/svg+xml': SVG_TEXT, 'text/plain': 'svg'}, raw=True)"]
    write_notebook(root_dir / "nb.ipynb", cells)
    nb = await live()
    await nb.run_all()
    await nb.wait_idle(timeout=180)
    sha1 = hashlib.sha1(png).hexdigest()
    for i in range(1, 51):
        assert ordered(record(nb, f"cell-{i}")["output"])[0]["data"]["image/png"] == f"sha1:{sha1}"
    svg_output = ordered(record(nb, "cell-51")["output"])[0]
    assert svg_output["data"]["image/svg+xml"] == svg

    with sqlite3.connect(tmp_path / "cocalc.db") as db:
        assert db.execute("SELECT COUNT(*) FROM blobs WHERE sha1 = ?", (sha1,)).fetchone()[0] == 1

    blob = await server.http.get(f"/api/cocalc-sync/blobs/{sha1}")
    assert blob.status_code == 200 and blob.content == png
    assert blob.headers["content-type"] == "image/png"
    assert blob.headers["etag"] == f'"{sha1}"'
    assert blob.headers["cache-control"] == "max-age=31536000, immutable"
    again = await server.http.get(
        f"/api/cocalc-sync/blobs/{sha1}", headers={"If-None-Match": f'"{sha1}"'}
    )
    assert again.status_code == 304
    assert (await server.http.get("/api/cocalc-sync/blobs/" + "0" * 40)).status_code == 404
    bad = await server.http.get("/api/cocalc-sync/blobs/not-a-hash")
    assert bad.status_code == 400 and "SHA1" in bad.json()["message"]

    # JupyterLab sees the image inlined
    async with server.ynotebook("nb.ipynb") as lab:
        lab_png = lab.ycells[1]["outputs"][0]
        assert isinstance(lab_png, Map) and lab_png["data"]["image/png"] == b64

    # the saved file has the base64, validates, and the SVG is byte for byte the same
    def saved():
        file = read_notebook_file(root_dir / "nb.ipynb")
        return file if file is not None and len(file.cells[51].outputs) == 1 else None

    file = await eventually(saved, timeout=20)
    nbformat.validate(file)
    assert all(file.cells[i].outputs[0].data["image/png"] == b64 for i in range(1, 51))
    assert file.cells[51].outputs[0].data["image/svg+xml"] == svg


@pytest.mark.cocalc(blob_threshold=4096)
async def test_a_missing_blob_exports_as_a_valid_placeholder(server, root_dir, live, tmp_path):
    png = png_bytes(seed=11)
    write_notebook(
        root_dir / "nb.ipynb",
        [
            nbformat.v4.new_code_cell(
                "x",
                id="img",
                outputs=[
                    nbformat.v4.new_output(
                        "display_data",
                        data={
                            "image/png": base64.b64encode(png).decode(),
                            "text/plain": "<Figure>",
                        },
                    )
                ],
            )
        ],
    )
    nb = await live()
    sha1 = hashlib.sha1(png).hexdigest()
    assert ordered(record(nb, "img")["output"])[0]["data"]["image/png"] == f"sha1:{sha1}"
    export = await server.http.get(NB + "/export", params={"to": "ipynb"})
    assert base64.b64encode(png).decode() in export.text
    # the blob disappears from the store (and from memory)
    with sqlite3.connect(tmp_path / "cocalc.db") as db:
        db.execute("DELETE FROM blobs")
    from jupyter_server.serverapp import ServerApp

    ServerApp.instance().web_app.settings["cocalc_sync"].blobs._cache.clear()
    export = await server.http.get(NB + "/export", params={"to": "ipynb"})
    exported = nbformat.reads(export.text, as_version=4)
    nbformat.validate(exported)
    data = exported.cells[0].outputs[0].data
    assert "image/png" not in data and "missing from the blob store" in data["text/plain"]
