"""A based log (``store/bases.py``): a YNotebook whose build is not stored is replayed, snapshot
and squashed from the table version it was built from, and that version is never squashed
away."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nbformat
from helpers import server_modules_after
from jupyter_ydoc import YNotebook
from postgres import worker_for
from pycrdt import Doc, Text

from jupyter_cocalc_sync.format.ipynb import initial_update, notebook_to_records
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.format.states import records_of_state
from jupyter_cocalc_sync.origin import FILE, STORE, Origin
from jupyter_cocalc_sync.permissions import FULL
from jupyter_cocalc_sync.store import ChangeLog
from jupyter_cocalc_sync.store.bases import Base
from jupyter_cocalc_sync.store.history import HistorySquasher, Retention
from jupyter_cocalc_sync.store.projections import projection_doc
from jupyter_cocalc_sync.ynotebook.base import YNOTEBOOK_BUILDER
from jupyter_cocalc_sync.ynotebook.projection import BuiltBase, YNotebookProjection

LAB = Origin.of_peer("ada", FULL)


def _notebook() -> nbformat.NotebookNode:
    metadata = {f"key{n}": n for n in range(6)}
    return nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}, **metadata},
        cells=[
            nbformat.v4.new_code_cell(
                f"x = {n}",
                id=f"c{n}",
                metadata=metadata,
                outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text=f"{n}\n"),
                    nbformat.v4.new_output("display_data", {"image/png": "ref", "text/plain": "i"}),
                ],
            )
            for n in range(40)
        ],
    )


def _inline(output: dict[str, Any], _cell_id: str) -> dict[str, Any]:
    """A render that changes values, not fields (as inlining a blob does)."""
    if "data" in output:
        return {**output, "data": {**output["data"], "image/png": "inlined"}}
    return output


async def test_a_based_log_is_replayed_snapshot_and_squashed_from_its_base(store_spec):
    log = ChangeLog(worker_for(store_spec), snapshot_interval=4)
    await log.open()
    doc = projection_doc("nb")
    imported = notebook_to_records(_notebook())
    table_update = initial_update(imported)
    assert await log.append("nb", table_update, "file") == 1
    db = notebook_syncdb()
    db.apply_update(table_update, FILE)
    projection = await YNotebookProjection.built_in_steps(
        db, records=notebook_to_records(_notebook()), render_output=_inline
    )
    base = projection.take_base()
    first = projection.take_first_version()
    assert base is not None and first is not None and base.pieces == len(first)
    stored = Base("nb", 1, YNOTEBOOK_BUILDER, base.client_id, base.clock)
    await log.set_base(doc, stored)
    logged: list[asyncio.Future[int]] = []
    projection.on_update(lambda update, _origin: logged.append(log.append(doc, update)))
    client = YNotebook(Doc())
    for piece in first:
        client.ydoc.apply_update(piece)
    for n in range(12):  # a client's edits of text, metadata and outputs
        before = client.ydoc.get_state()
        cell = client.ycells[n]
        source: Text = cell["source"]
        source += " + 1"
        cell["metadata"][f"key{n % 6}"] = "edited"
        stream: Text = cell["outputs"][0]["text"]
        stream += "more\n"
        projection.apply_update(client.ydoc.get_update(before), LAB)
    del client.ycells[20]
    projection.apply_update(client.ydoc.get_update(before), LAB)
    versions = await asyncio.gather(*logged)
    squasher = HistorySquasher(log)
    assert await squasher.squash_versions(doc, versions[2:8]) == 5
    await log.settled()  # snapshots every 4 versions

    state, _ = await log.load(doc)
    assert state is not None and len(state) < sum(map(len, first)) / 4  # without the base
    table = await log.state_at("nb", 1)
    restored = await YNotebookProjection.restored_from_base(
        notebook_syncdb(),
        records=records_of_state(table),
        base=BuiltBase(base.client_id, base.clock, 0),
        state=state,
        render_output=_inline,
    )
    assert restored.ynotebook.get() == projection.ynotebook.get() == client.get()
    unchanged = notebook_syncdb()  # a table still at the base's version: built from itself
    unchanged.apply_update(table, STORE)
    from_table = await YNotebookProjection.restored_from_base(
        unchanged,
        records=None,
        base=BuiltBase(base.client_id, base.clock, 0),
        state=state,
        render_output=_inline,
    )
    assert from_table.ynotebook.get() == client.get()
    assert restored.ynotebook.get()["cells"][0]["outputs"][1]["data"]["image/png"] == "inlined"

    # the table's version the base is built from stays, whatever retention squashes
    for n in range(3):
        db.set({"type": "cell", "id": f"c{n}", "input": "from the file"}, FILE)
        await log.append("nb", db.get_update(), "file")
    retention = HistorySquasher(log, Retention(keep_all=3600.0, keep_hourly=0.0))
    assert await retention.apply_retention(now=time.time() + 2 * 3600) > 0
    assert 1 in [v.version for v in await log.versions("nb")]
    kept = {r["id"]: r for r in records_of_state(await log.state_at("nb", 1))}
    assert kept == {r["id"]: r for r in records_of_state(table)}
    log.close()
    log.worker.close()


def test_a_base_built_without_rendering_makes_the_rendered_items(tmp_path):
    """The replay process's build (no output hooks) has the items of the server's."""
    from jupyter_cocalc_sync.ynotebook.base import canonical_ynotebook

    records = notebook_to_records(_notebook())
    table = initial_update(records)
    db = notebook_syncdb()
    db.apply_update(table, STORE)
    rendered = asyncio.run(
        YNotebookProjection.built_in_steps(db, records=records, render_output=_inline)
    )
    plain = canonical_ynotebook(table, rendered.ydoc.client_id)
    assert plain.get_state() == rendered.ydoc.get_state()
    client = YNotebook(Doc())
    client.ydoc.apply_update(rendered.ydoc.get_update())
    before = client.ydoc.get_state()
    client.ycells[3]["metadata"]["key2"] = "edited"
    del client.ycells[5]["outputs"][0]
    edit = client.ydoc.get_update(before)
    plain.apply_update(edit)
    replayed = YNotebook(plain).get()
    assert replayed["cells"][3]["metadata"]["key2"] == "edited"
    assert [o["output_type"] for o in replayed["cells"][5]["outputs"]] == ["display_data"]


def test_the_replay_process_builds_a_base_without_importing_the_server_or_jupyter_ydoc():
    """(A fresh replay worker pays seconds of CPU for them: ``test_replay_pool.py``.)"""
    imported, server = server_modules_after(
        f"from jupyter_cocalc_sync.store import bases, replay\nbases.builder({YNOTEBOOK_BUILDER!r})"
    )
    assert not server
    assert "jupyter_cocalc_sync.ynotebook.base" in imported


def test_the_ynotebook_1_build_makes_the_items_it_always_made():
    """Stored bases are built again by this build: a change to what it makes (more or fewer
    items) must be a build of a new name, with ``ynotebook/1`` kept as it is."""
    from jupyter_cocalc_sync.store.bases import state_vector
    from jupyter_cocalc_sync.ynotebook.base import canonical_ynotebook

    built = canonical_ynotebook(initial_update(notebook_to_records(_notebook())), 7)
    assert state_vector(built.get_state()) == {7: 1230}
