"""What JupyterLab is shown for what the frontend extension renders: a pending ``input()`` as
``INPUT_REQUEST_MIME``, the overflow of a truncated output a page at a time; and a cell run
again with fewer outputs, whose old ones go."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import cell, eventually, finished, outputs, write_notebook
from pycrdt import Map

from jupyter_cocalc_sync.outputs.formats import INPUT_REQUEST_MIME, MORE_OUTPUT_MIME

pytestmark = pytest.mark.timeout(180)

NB = "/api/cocalc-sync/notebooks/nb.ipynb"


def lab_outputs(lab: Any, index: int) -> list[dict[str, Any]]:
    return [o.to_py() if isinstance(o, Map) else o for o in lab.get_cell(index)["outputs"]]


async def test_a_pending_input_is_an_input_box_in_jupyterlab_then_one_stream(
    server, root_dir, live
):
    write_notebook(root_dir / "nb.ipynb", ["print('before')\nname = input('Name: ')\nprint(name)"])
    nb = await live()
    async with server.ynotebook("nb.ipynb") as lab:
        await nb.run(["cell-0"])

        def shown_request() -> dict[str, Any] | None:
            for output in lab_outputs(lab, 0):
                if INPUT_REQUEST_MIME in output.get("data", {}):
                    return output
            return None

        await eventually(lambda: shown_request() is not None, lab.ydoc, timeout=60)
        request = shown_request()
        assert request is not None
        assert request["data"][INPUT_REQUEST_MIME] == {
            "path": "nb.ipynb",
            "cell_id": "cell-0",
            "prompt": "Name: ",
            "password": False,
        }
        await nb.answer_input("cell-0", "Ada")
        await nb.wait_for(lambda n: finished(n, "cell-0"))
        # one stream, as JupyterLab would merge it in its own copy (and write it back)
        expected = [{"output_type": "stream", "name": "stdout", "text": "before\nName: Ada\nAda\n"}]
        await eventually(lambda: lab_outputs(lab, 0) == expected, lab.ydoc)
        assert outputs(cell(nb, "cell-0")) == expected


async def test_a_cell_run_again_with_fewer_outputs_shows_only_the_new_ones_in_jupyterlab(
    server, root_dir, live
):
    # (the run's outputs replace the old ones in place: an equal one stays, the rest go)
    code = (
        "import os\nprint('same')\nif not os.path.exists('ran'):\n"
        "    open('ran', 'w').close()\n    display('the first run only')"
    )
    write_notebook(root_dir / "nb.ipynb", [code])
    nb = await live()
    async with server.ynotebook("nb.ipynb") as lab:
        await nb.run(["cell-0"])
        await nb.wait_for(lambda n: finished(n, "cell-0"))
        await eventually(lambda: len(lab_outputs(lab, 0)) == 2, lab.ydoc)
        first = cell(nb, "cell-0")["exec_count"]
        await nb.run(["cell-0"])
        await nb.wait_for(
            lambda n: finished(n, "cell-0") and cell(n, "cell-0").get("exec_count") != first
        )
        expected = [{"output_type": "stream", "name": "stdout", "text": "same\n"}]
        await eventually(lambda: lab_outputs(lab, 0) == expected, lab.ydoc)
        assert outputs(cell(nb, "cell-0")) == expected


@pytest.mark.cocalc(max_output_length=20_000)
async def test_the_overflow_a_page_at_a_time(server, root_dir, live):
    lines = 100_000
    write_notebook(root_dir / "nb.ipynb", [f"for i in range({lines}): print(i)"])
    nb = await live()
    async with server.ynotebook("nb.ipynb") as lab:
        await nb.run(["cell-0"])
        await nb.wait_for(lambda n: finished(n, "cell-0"), timeout=120)
        marker = {"path": "nb.ipynb", "cell_id": "cell-0"}
        await eventually(
            lambda: any(
                o.get("data", {}).get(MORE_OUTPUT_MIME) == marker for o in lab_outputs(lab, 0)
            ),
            lab.ydoc,
        )
    visible = "".join(o.get("text", "") for o in outputs(cell(nb, "cell-0")))
    url = NB + "/cells/cell-0/more_output"
    sizes = (await server.http.get(url, params={"limit": "0"})).json()
    assert sizes["messages"] == [] and sizes["next_offset"] == 0 and sizes["total"] > 1
    text, offset, pages, shown_bytes = "", 0, 0, 0
    while offset is not None:
        page = (await server.http.get(url, params={"offset": offset, "limit": 2})).json()
        assert page["offset"] == offset and page["total"] == sizes["total"]
        assert all(m["output_type"] == "stream" for m in page["messages"])
        text += "".join(m["text"] for m in page["messages"])
        shown_bytes += page["page_bytes"]
        offset, pages = page["next_offset"], pages + 1
    assert visible + text == "".join(f"{i}\n" for i in range(lines))
    assert pages == (sizes["total"] + 1) // 2 and shown_bytes == sizes["bytes"]
    past = (await server.http.get(url, params={"offset": sizes["total"] + 5})).json()
    assert past["messages"] == [] and past["next_offset"] is None


@pytest.mark.parametrize(
    "query", [{"offset": "-1"}, {"offset": "x"}, {"limit": "257"}, {"limit": "1.5"}]
)
async def test_a_bad_page_is_a_400_naming_the_parameter(server, root_dir, query):
    write_notebook(root_dir / "nb.ipynb", ["print(1)"])
    answer = await server.http.get(NB + "/cells/cell-0/more_output", params=query)
    assert answer.status_code == 400
    (name,) = query
    assert name in answer.json()["message"]
