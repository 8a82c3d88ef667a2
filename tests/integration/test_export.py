"""Export from the live document: every format, unsaved edits, blobs, overflow, widget state."""

from __future__ import annotations

import base64
import io
import os
import shutil
import struct
import zipfile
import zlib

import nbformat
import pytest
from helpers import write_notebook

NB = "/api/cocalc-sync/notebooks/nb.ipynb"


def png(width: int = 96, height: int = 96) -> bytes:
    """A valid PNG of noise: larger than the blob threshold, not compressible."""
    raw = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))


WIDGET_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
WIDGET_STATE = {
    "version_major": 2,
    "version_minor": 0,
    "state": {
        WIDGET_ID: {
            "model_name": "IntSliderModel",
            "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0",
            "state": {"value": 37, "description": "unique-slider-label"},
        }
    },
}


def rich_notebook(path, image: bytes) -> None:
    cells = [
        nbformat.v4.new_code_cell(
            "show()",
            id="image",
            outputs=[
                nbformat.v4.new_output(
                    "display_data", data={"image/png": base64.b64encode(image).decode()}
                )
            ],
        ),
        nbformat.v4.new_code_cell(
            "flood()",
            id="flood",
            outputs=[
                nbformat.v4.new_output(
                    "stream", name="stdout", text="".join(f"row {i}\n" for i in range(3000))
                )
            ],
        ),
        nbformat.v4.new_code_cell(
            "slider",
            id="widget",
            outputs=[
                nbformat.v4.new_output(
                    "display_data",
                    data={
                        "application/vnd.jupyter.widget-view+json": {
                            "version_major": 2,
                            "version_minor": 0,
                            "model_id": WIDGET_ID,
                        },
                        "text/plain": "IntSlider(value=37)",
                    },
                )
            ],
        ),
    ]
    write_notebook(path, cells, widgets={"application/vnd.jupyter.widget-state+json": WIDGET_STATE})


@pytest.mark.cocalc(autosave_delay=3600, max_output_length=2000)
async def test_export_is_of_the_live_document_with_everything_inlined(server, root_dir):
    image = png()
    rich_notebook(root_dir / "nb.ipynb", image)
    records = (await server.http.get(NB)).json()["records"]
    stored = {r["id"]: r for r in records if r["type"] == "cell"}
    # what the live document holds: a blob reference and truncated output
    assert str(stored["image"]["output"]["0"]["data"]["image/png"]).startswith("sha1:")
    assert {"more_output": True} in stored["flood"]["output"].values()
    edit = {"type": "cell", "id": "image", "input": "show()  # an edit nobody saved"}
    assert (await server.http.post(NB + "/records", json={"set": [edit]})).status_code == 200
    assert "nobody saved" not in (root_dir / "nb.ipynb").read_text()

    ipynb = await server.http.get(NB + "/export", params={"to": "ipynb"})
    nb = nbformat.reads(ipynb.text, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].source == "show()  # an edit nobody saved"
    assert base64.b64decode(nb.cells[0].outputs[0]["data"]["image/png"]) == image
    assert "".join(o.get("text", "") for o in nb.cells[1].outputs).count("row ") == 3000
    assert nb.metadata.widgets["application/vnd.jupyter.widget-state+json"] == WIDGET_STATE

    html = await server.http.get(NB + "/export", params={"to": "html"})
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.headers["content-disposition"].startswith('inline; filename="nb.html"')
    text = html.text
    assert "an edit nobody saved" in text
    assert base64.b64encode(image).decode() in text and "sha1:" not in text
    assert "row 2999" in text
    assert "application/vnd.jupyter.widget-state+json" in text and "unique-slider-label" in text

    # markdown writes images as files: a zip of the document and its images
    markdown = await server.http.get(NB + "/export", params={"to": "markdown", "download": "true"})
    assert markdown.headers["content-type"] == "application/zip"
    assert markdown.headers["content-disposition"].startswith('attachment; filename="nb.zip"')
    archive = zipfile.ZipFile(io.BytesIO(markdown.content))
    assert "an edit nobody saved" in archive.read("nb.md").decode()
    pngs = [n for n in archive.namelist() if n.endswith(".png")]
    assert [archive.read(n) for n in pngs] == [image]


TEXT_FORMATS = {
    "ipynb": ("application/x-ipynb+json", "nb.ipynb"),
    "html": ("text/html; charset=utf-8", "nb.html"),
    "slides": ("text/html; charset=utf-8", "nb.slides.html"),
    "script": ("text/x-python; charset=utf-8", "nb.py"),
    "markdown": ("text/markdown; charset=utf-8", "nb.md"),
    "latex": ("text/latex; charset=utf-8", "nb.tex"),
    "rst": ("text/x-rst; charset=utf-8", "nb.rst"),
    "asciidoc": ("text/asciidoc; charset=utf-8", "nb.asciidoc"),
}


async def test_every_text_format_has_its_content_type_and_file_name(server, root_dir):
    language = {"name": "python", "mimetype": "text/x-python", "file_extension": ".py"}
    write_notebook(root_dir / "nb.ipynb", ["print('markerinsource')"], language_info=language)
    for to, (mimetype, filename) in TEXT_FORMATS.items():
        reply = await server.http.get(NB + "/export", params={"to": to})
        assert reply.status_code == 200, (to, reply.text)
        assert reply.headers["content-type"] == mimetype, to
        assert f'filename="{filename}"' in reply.headers["content-disposition"], to
        assert "markerinsource" in reply.text, to


async def test_pdf_needs_xelatex(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["1 + 1"])
    reply = await server.http.get(NB + "/export", params={"to": "pdf"})
    if shutil.which("xelatex") is None:
        assert reply.status_code == 400 and "xelatex" in reply.json()["message"]
    else:
        assert reply.headers["content-type"] == "application/pdf"
        assert reply.content.startswith(b"%PDF")


@pytest.mark.parametrize("to", ["latex", "rst", "asciidoc"])
async def test_markdown_to_a_pandoc_format_needs_pandoc(server, root_dir, to):
    write_notebook(root_dir / "nb.ipynb", [nbformat.v4.new_markdown_cell("# *Title*", id="md")])
    reply = await server.http.get(NB + "/export", params={"to": to})
    if shutil.which("pandoc") is None:
        assert reply.status_code == 400, reply.text
        assert "pandoc" in reply.json()["message"]
    else:
        assert reply.status_code == 200, reply.text
        assert "Title" in reply.text


async def test_webpdf_is_printed_by_the_system_chromium(server, root_dir):
    from jupyter_cocalc_sync.export.tools import system_chromium

    write_notebook(root_dir / "nb.ipynb", ["1 + 1"])
    reply = await server.http.get(NB + "/export", params={"to": "webpdf"})
    if system_chromium() is None:
        assert reply.status_code == 400 and "chromium" in reply.json()["message"]
        return
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/pdf"
    assert 'filename="nb.pdf"' in reply.headers["content-disposition"]
    assert reply.content.startswith(b"%PDF")


async def test_non_ascii_file_names(server, root_dir):
    write_notebook(root_dir / "naïve résumé.ipynb", ["1"])
    reply = await server.http.get(
        "/api/cocalc-sync/notebooks/na%C3%AFve%20r%C3%A9sum%C3%A9.ipynb/export",
        params={"to": "html"},
    )
    disposition = reply.headers["content-disposition"]
    assert "filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.html" in disposition
    assert disposition.isascii() and 'filename="na_ve r_sum_.html"' in disposition
