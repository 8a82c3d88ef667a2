"""The YNotebook projection of a notebook table, both ways (``ynotebook/writer.py``: table →
YNotebook, ``ynotebook/reader.py``: YNotebook → table), with a JupyterLab-like client on a
Yjs document of its own exchanging updates with it."""

from __future__ import annotations

from typing import Any

import nbformat
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map

from jupyter_cocalc_sync.format.ipynb import initial_update, notebook_to_records
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import SERVER, Origin
from jupyter_cocalc_sync.permissions import FULL
from jupyter_cocalc_sync.ynotebook.projection import YNotebookProjection

STREAM = {"output_type": "stream", "name": "stdout", "text": "hello\n"}


def table(*cells: dict[str, Any]):
    db = notebook_syncdb()
    for n, cell in enumerate(cells):
        db.set({"type": "cell", "cell_type": "code", "pos": float(n), **cell}, SERVER)
    db.commit(SERVER)
    return db


class Client:
    """A JupyterLab-like YNotebook replica of the projection's document."""

    def __init__(self, projection: YNotebookProjection) -> None:
        self.projection = projection
        self.origin = Origin.of_peer("ada", FULL)  # this client's connection
        self.ynb = YNotebook(Doc())
        self.pull()

    def pull(self) -> None:
        doc = self.projection.ydoc
        self.ynb.ydoc.apply_update(doc.get_update(self.ynb.ydoc.get_state()))

    def push(self) -> None:
        mine = self.ynb.ydoc
        self.projection.apply_update(mine.get_update(self.projection.ydoc.get_state()), self.origin)

    def sources(self) -> list[str]:
        return [str(c["source"]) for c in self.ynb.ycells]


def records(db) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in db.get({"type": "cell"})}


def test_the_table_is_built_into_cells_in_order_with_outputs():
    db = table(
        {"id": "b", "input": "second", "pos": 2.0},
        {"id": "a", "input": "first", "pos": 1.0, "exec_count": 3, "output": {"0": STREAM}},
    )
    projection = YNotebookProjection(db)
    cells = projection.ynotebook.get()["cells"]
    assert [c["id"] for c in cells] == ["a", "b"]
    assert [c["source"] for c in cells] == ["first", "second"]
    assert cells[0]["execution_count"] == 3
    assert cells[0]["outputs"] == [STREAM]


def test_table_changes_reach_a_client_as_edits_inserts_deletes_and_moves():
    db = table({"id": "a", "input": "x = 1"}, {"id": "b", "input": "y = 2"})
    projection = YNotebookProjection(db)
    client = Client(projection)
    source = client.ynb.ycells[0]["source"]

    db.set({"type": "cell", "id": "a", "input": "x = 10"}, SERVER)
    db.set(
        {"type": "cell", "id": "c", "cell_type": "markdown", "input": "# new", "pos": 0.5}, SERVER
    )
    db.commit(SERVER)
    client.pull()
    assert client.sources() == ["x = 10", "# new", "y = 2"]
    db.delete({"type": "cell", "id": "b"}, SERVER)
    db.commit(SERVER)
    client.pull()
    assert client.sources() == ["x = 10", "# new"]
    assert str(source) == "x = 10"  # edited in place: the client's Text is the same one

    db.set({"type": "cell", "id": "a", "pos": 5.0}, SERVER)  # moved after "c"
    db.commit(SERVER)
    client.pull()
    assert client.sources() == ["# new", "x = 10"]
    assert [c["cell_type"] for c in client.ynb.get()["cells"]] == ["markdown", "code"]


def test_outputs_written_to_the_table_are_appended_for_the_client():
    db = table({"id": "a", "input": "print('hello')"})
    projection = YNotebookProjection(db)
    client = Client(projection)
    db.set({"type": "cell", "id": "a", "output": {"0": STREAM}}, SERVER)
    db.commit(SERVER)
    client.pull()
    assert client.ynb.get()["cells"][0]["outputs"] == [STREAM]
    db.set({"type": "cell", "id": "a", "output": None}, SERVER)
    db.commit(SERVER)
    client.pull()
    assert client.ynb.get()["cells"][0]["outputs"] == []


def test_a_client_edit_becomes_a_table_change_committed_once():
    db = table({"id": "a", "input": "x = 1"})
    commits: list[Origin] = []

    def commit(origin: Origin) -> None:
        commits.append(origin)
        db.commit(origin)

    projection = YNotebookProjection(db, commit=commit)
    client = Client(projection)
    source = client.ynb.ycells[0]["source"]
    source += "  # lab"
    client.push()
    assert records(db)["a"]["input"] == "x = 1  # lab"
    assert commits == [client.origin]  # the client's edit, committed as its own


def test_a_cell_a_client_inserts_gets_a_record_after_its_neighbour():
    db = table({"id": "a", "input": "first"}, {"id": "b", "input": "last"})
    projection = YNotebookProjection(db)
    client = Client(projection)
    ycell = client.ynb.create_ycell({"cell_type": "code", "id": "new", "source": "middle"})
    client.ynb.ycells.insert(1, ycell)
    client.push()
    by_id = records(db)
    assert by_id["new"]["input"] == "middle"
    assert by_id["a"]["pos"] < by_id["new"]["pos"] < by_id["b"]["pos"]


def test_a_cell_a_client_deletes_is_deleted_from_the_table():
    db = table({"id": "a", "input": "keep"}, {"id": "b", "input": "drop"})
    projection = YNotebookProjection(db)
    client = Client(projection)
    del client.ynb.ycells[1]
    client.push()
    assert set(records(db)) == {"a"}


def test_notebook_metadata_goes_both_ways():
    db = table({"id": "a", "input": ""})
    db.set(
        {"type": "settings", "id": "main", "metadata": {"language_info": {"name": "python"}}},
        SERVER,
    )
    db.commit(SERVER)
    projection = YNotebookProjection(db)
    client = Client(projection)
    meta = client.ynb.ydoc.get("meta", type=Map)
    assert meta["metadata"]["language_info"] == {"name": "python"}
    meta["metadata"]["tags"] = ["x"]  # as JupyterLab sets a notebook metadata key
    client.push()
    settings = db.get_one({"type": "settings", "id": "main"}) or {}
    assert settings.get("metadata", {}).get("tags") == ["x"]
    db.set({"type": "settings", "id": "main", "metadata": {"authors": ["ada"]}}, SERVER)
    db.commit(SERVER)
    client.pull()
    assert meta["metadata"]["authors"] == ["ada"]


def test_closing_stops_both_directions():
    db = table({"id": "a", "input": "x"})
    projection = YNotebookProjection(db)
    client = Client(projection)
    projection.close()
    db.set({"type": "cell", "id": "a", "input": "changed"}, SERVER)
    db.commit(SERVER)
    client.pull()
    assert client.sources() == ["x"]


async def test_a_yNotebook_built_from_the_imported_records_equals_one_read_from_the_table(
    monkeypatch,
):
    png = "iVBORw0KGgo="
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}, "x": [1, 2.5]},
        cells=[
            nbformat.v4.new_markdown_cell("# *title*", attachments={"a.png": {"image/png": png}}),
            nbformat.v4.new_raw_cell("raw", metadata={"format": "text/plain"}),
            nbformat.v4.new_code_cell(
                "print(1)\n1",
                execution_count=3,
                metadata={"tags": ["t"], "collapsed": True},
                outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text="1\n"),
                    nbformat.v4.new_output(
                        "execute_result", {"text/plain": "1"}, execution_count=3
                    ),
                    nbformat.v4.new_output("display_data", {"image/png": png}),
                    nbformat.v4.new_output("error", ename="E", evalue="v", traceback=["t"]),
                ],
            ),
            *[nbformat.v4.new_code_cell(f"x = {n}") for n in range(60)],  # past one step
        ],
    )
    imported = notebook_to_records(notebook)
    db = notebook_syncdb()
    db.apply_update(initial_update(imported), SERVER)
    from_table = await YNotebookProjection.built_in_steps(db)

    def read_back(*_: Any) -> None:
        raise AssertionError("read back from the table")

    monkeypatch.setattr(db, "read", read_back)
    monkeypatch.setattr(db, "field_values", read_back)
    from_records = await YNotebookProjection.built_in_steps(db, records=imported)
    assert from_records.ynotebook.get() == from_table.ynotebook.get()
    assert len(from_records.ycells) == 63
    assert imported == []  # let go of as built


async def test_a_new_yNotebook_gives_the_updates_of_its_build_which_make_all_of_it():
    """Its first version in pieces, each a build step's (a big notebook encoded at once stalls
    the server), changes after the build included, given out once."""
    db = table(*[{"id": f"c{n}", "input": f"x = {n}", "output": {"0": STREAM}} for n in range(60)])
    projection = await YNotebookProjection.built_in_steps(db)
    db.set({"type": "cell", "id": "c3", "input": "edited"}, SERVER)
    db.commit(SERVER)
    pieces = projection.take_first_version()
    assert pieces is not None and len(pieces) > 3  # (60 cells: three build steps at least)
    assert max(map(len, pieces)) < len(projection.ydoc.get_update()) / 2
    client = YNotebook(Doc())
    for piece in pieces:
        client.ydoc.apply_update(piece)
    assert client.get() == projection.ynotebook.get()
    assert str(client.ycells[3]["source"]) == "edited"
    assert projection.take_first_version() is None  # given out once
    db.set({"type": "cell", "id": "c4", "input": "no longer recorded"}, SERVER)
    db.commit(SERVER)
    assert projection.take_first_version() is None


def test_a_restored_yNotebook_has_no_first_version():
    db = table({"id": "a", "input": "x"})
    built = YNotebookProjection(db)
    restored = YNotebookProjection(db, state=built.ydoc.get_update())
    assert restored.take_first_version() is None


def _keys_reversed(value: Any) -> Any:
    """``value`` with every dict's keys in the opposite order (equal as JSON)."""
    if isinstance(value, dict):
        return {k: _keys_reversed(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_keys_reversed(v) for v in value]
    return value


async def test_the_same_records_built_by_the_same_client_make_the_same_yjs_items():
    """Whatever order a record's keys come in (the file's, or the table's when read back), a
    build makes the same items: a client's edit of one build means the same in the other."""
    metadata = {f"key{n}": n for n in range(8)}
    html = {"output_type": "display_data", "data": {"text/html": "<b>"}, "metadata": {}}
    cells = [
        {
            "id": f"c{n}",
            "input": f"x = {n}",
            "metadata": metadata,
            "output": {"0": STREAM, "1": html},
        }
        for n in range(30)
    ]
    db = table(*cells)
    settings = {"type": "settings", "id": "", "metadata": metadata, "kernel": "python3"}
    built = []
    for order in (lambda r: r, _keys_reversed):
        records = [order(settings), *(order(r) for r in db.get({"type": "cell"}))]
        built.append(await YNotebookProjection.built_in_steps(db, records=records, client_id=7))
    first, second = (YNotebook(Doc()) for _ in built)
    first.ydoc.apply_update(built[0].ydoc.get_update())
    second.ydoc.apply_update(built[1].ydoc.get_update())
    before = first.ydoc.get_state()
    cell = first.ycells[5]
    cell["metadata"]["key3"] = "edited"
    del cell["metadata"]["key6"]
    cell["outputs"][1]["metadata"] = {"isolated": True}
    cell["outputs"][0]["text"] += "more\n"
    first.ydoc.get("meta", type=Map)["metadata"]["key1"] = "edited"
    second.ydoc.apply_update(first.ydoc.get_update(before))
    assert second.get() == first.get()
    assert second.get()["cells"][5]["outputs"][1]["metadata"] == {"isolated": True}


async def test_a_build_is_a_base_only_from_given_records_rendered_with_their_fields():
    """A build the store can make again without the output hooks (``store/bases.py``)."""
    cells = [{"id": f"c{n}", "input": "x", "output": {"0": STREAM}} for n in range(3)]
    db = table(*cells)

    def notice(output: dict[str, Any], _cell_id: str) -> dict[str, Any]:
        return {"output_type": "display_data", "data": {"text/plain": "notice"}, "metadata": {}}

    def inline(output: dict[str, Any], _cell_id: str) -> dict[str, Any]:
        return {**output, "name": "stderr"}

    from_table = await YNotebookProjection.built_in_steps(db)
    shown = await YNotebookProjection.built_in_steps(db, records=db.get(), render_output=inline)
    reshaped = await YNotebookProjection.built_in_steps(db, records=db.get(), render_output=notice)
    assert from_table.take_base() is None
    assert reshaped.take_base() is None
    base = shown.take_base()
    first = shown.take_first_version()
    assert base is not None and first is not None
    assert (base.client_id, base.pieces) == (shown.ydoc.client_id, len(first))
    assert shown.take_base() is None  # given out once
