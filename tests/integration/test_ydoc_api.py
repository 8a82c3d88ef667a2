"""jupyter_server_ydoc's in-server API: ``settings["jupyter_server_ydoc"]`` for extensions."""

from __future__ import annotations

import pytest
from helpers import cell_sources, eventually, read_notebook_file, write_notebook

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
#: who history names for edits made through the API from this module (its top-level package)
THIS_EXTENSION = f"extension:{__name__.split('.', 1)[0]}"


def append_to(ynb, index: int, text: str) -> None:
    source = ynb.ycells[index]["source"]
    source += text  # (the Text itself: ``cell["source"] += …`` would set a new value)


@pytest.fixture
def jp_server_config(jp_server_config):
    # as installed: this package's config disables jupyter_server_ydoc (not installed here, it
    # is then listed disabled)
    jp_server_config["ServerApp"]["jpserver_extensions"]["jupyter_server_ydoc"] = False
    return jp_server_config


def api_of(jp_serverapp):
    return jp_serverapp.web_app.settings["jupyter_server_ydoc"]


async def versions(server) -> list[dict]:
    return (await server.http.get(NB + "/history")).json()["versions"]


@pytest.mark.cocalc(document_cleanup_delay=30)
async def test_an_extension_edits_a_notebook_nobody_has_open(server, root_dir, jp_serverapp):
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2"])
    api = api_of(jp_serverapp)
    # the checks extensions make before they use it (jupyter-ai-tools, jupyterlab-chat)
    package = jp_serverapp.extension_manager.extensions["jupyter_server_ydoc"]
    assert package.enabled and not api.disable_rtc
    assert jp_serverapp.extension_manager.extension_apps["jupyter_server_ydoc"] == set()

    file_id = jp_serverapp.web_app.settings["file_id_manager"].index("nb.ipynb")
    room_id = f"json:notebook:{file_id}"
    assert api.ywebsocket_server.room_exists(room_id)
    assert not api.ywebsocket_server.room_exists("json:notebook:no-such-file")
    assert await api.get_document(room_id="json:notebook:no-such-file", copy=False) is None

    ynb = await api.get_document(room_id=room_id, copy=False)
    assert [str(c["source"]) for c in ynb.ycells] == ["a = 1", "b = 2"]
    ynb.ycells.append(ynb.create_ycell({"cell_type": "code", "source": "c = 3", "id": "new"}))
    append_to(ynb, 0, "  # edited")

    def saved():
        nb = read_notebook_file(root_dir / "nb.ipynb")
        return nb is not None and len(nb.cells) == 3 and nb

    nb = await eventually(saved)
    assert [c.source for c in nb.cells] == ["a = 1  # edited", "b = 2", "c = 3"]
    records = (await server.http.get(NB)).json()["records"]
    assert {r.get("input") for r in records if r.get("type") == "cell"} == {
        "a = 1  # edited",
        "b = 2",
        "c = 3",
    }
    await jp_serverapp.web_app.settings["cocalc_sync"].changelog.flushed()
    assert THIS_EXTENSION in {v["author"] for v in await versions(server)}

    # a JupyterLab client sees the edits, and the extension sees the JupyterLab client's
    async with server.ynotebook("nb.ipynb") as lab:
        assert cell_sources(lab) == ["a = 1  # edited", "b = 2", "c = 3"]
        append_to(lab, 1, "  # by lab")
        await eventually(lambda: str(ynb.ycells[1]["source"]) == "b = 2  # by lab", ynb.ydoc)
        append_to(ynb, 2, "  # again")
        await eventually(lambda: cell_sources(lab)[2] == "c = 3  # again", lab.ydoc)

    # the same replica for the same extension; a copy is detached
    room = await api.ywebsocket_server.get_room(room_id)
    assert room._document is ynb and room.ydoc is ynb.ydoc and room.awareness is ynb.awareness
    copy = await api.get_document(path="nb.ipynb", content_type="notebook", file_format="json")
    assert copy is not ynb and copy.get()["cells"][2]["source"] == "c = 3  # again"
    append_to(copy, 0, "  # only in the copy")
    assert str(ynb.ycells[0]["source"]) == "a = 1  # edited"
    with pytest.raises(ValueError, match="room_id"):
        await api.get_document(room_id=room_id, path="nb.ipynb")


@pytest.mark.cocalc(document_cleanup_delay=0.3)
async def test_a_replica_left_idle_joins_again_when_edited(server, root_dir, jp_serverapp):
    write_notebook(root_dir / "nb.ipynb", ["a = 1"])
    api = api_of(jp_serverapp)
    documents = jp_serverapp.web_app.settings["cocalc_sync"].documents
    file_id = jp_serverapp.web_app.settings["file_id_manager"].index("nb.ipynb")
    ynb = await api.get_document(room_id=f"json:notebook:{file_id}", copy=False)
    # idle: the replica leaves and the notebook closes
    await eventually(lambda: file_id not in documents.documents)
    append_to(ynb, 0, "  # later")

    def saved():
        nb = read_notebook_file(root_dir / "nb.ipynb")
        return nb is not None and nb.cells[0].source == "a = 1  # later"

    await eventually(saved)
