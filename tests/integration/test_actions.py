"""Notebook actions: each one commit that a JupyterLab client sees and one revert undoes."""

from __future__ import annotations

import pytest
from helpers import cell_ids, cell_sources, eventually, write_notebook
from test_authorization import EXECUTE, READ, WRITE, HeaderAuthorizer, as_user

from jupyter_cocalc_sync.client import ServerError

NB = "/api/cocalc-sync/notebooks/nb.ipynb"
CONTENT_FIELDS = ("input", "cell_type", "pos", "output", "exec_count", "tags", "attachments")


@pytest.fixture
def jp_server_config(jp_server_config):
    jp_server_config["ServerApp"]["authorizer_class"] = HeaderAuthorizer
    return jp_server_config


def ordered_ids(nb) -> list[str]:
    return [c["id"] for c in nb.cells()]


def inputs(nb) -> list[str]:
    return [nb.get_one({"type": "cell", "id": i})["input"] for i in ordered_ids(nb)]


def content(records: list[dict]) -> dict:
    """What an action may change, cell by cell (not run states)."""
    return {r["id"]: {k: r.get(k) for k in CONTENT_FIELDS} for r in records if r["type"] == "cell"}


async def versions(server) -> list[int]:
    reply = await server.http.get(NB + "/history")
    return [v["version"] for v in reply.json()["versions"]]


async def records(server, version: int | None = None) -> list[dict]:
    url = NB if version is None else f"{NB}/history/{version}"
    return (await server.http.get(url)).json()["records"]


async def one_version_undone_by_one_revert(server, lab, act) -> dict:
    """Run ``act()``; check it added exactly one version, and that reverting to the version
    before it brings back every cell's content — in the table and in JupyterLab's view."""
    before = await versions(server)
    before_content = content(await records(server))
    lab_before = cell_sources(lab)
    result = await act()
    after = await versions(server)
    assert len(after) == len(before) + 1, (before, after)
    assert content(await records(server, after[-1])) != before_content
    reply = await server.http.post(NB + "/revert", json={"version": before[-1]})
    assert reply.status_code == 200
    assert content(await records(server)) == before_content
    await eventually(lambda: cell_sources(lab) == lab_before, lab.ydoc)
    return result


async def test_edit_actions_are_one_commit_each_seen_by_jupyterlab_and_undone_by_one_revert(
    server, root_dir, live
):
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2", "c = 3"])
    nb = await live()
    async with server.ynotebook("nb.ipynb") as lab:

        async def insert_below_first():
            new = await nb.insert_cell(1, "cell-0", cell_type="markdown", input="# note")
            assert ordered_ids(nb) == ["cell-0", new, "cell-1", "cell-2"]
            await eventually(lambda: cell_ids(lab) == ordered_ids(nb), lab.ydoc)
            assert lab.get_cell(1)["cell_type"] == "markdown"
            positions = [nb.get_one({"type": "cell", "id": i})["pos"] for i in ordered_ids(nb)]
            assert positions[0] < positions[1] < positions[2]  # the midpoint, nothing renumbered
            return new

        await one_version_undone_by_one_revert(server, lab, insert_below_first)

        async def insert_at_start():
            new = await nb.insert_cell(-1)
            assert ordered_ids(nb)[0] == new
            await eventually(lambda: cell_ids(lab)[0] == new, lab.ydoc)

        await one_version_undone_by_one_revert(server, lab, insert_at_start)

        async def move_first_down_two():
            await nb.move_cell("cell-0", 2)
            assert ordered_ids(nb) == ["cell-1", "cell-2", "cell-0"]
            await eventually(lambda: cell_sources(lab) == ["b = 2", "c = 3", "a = 1"], lab.ydoc)
            await nb.move_cell("cell-0", 0)  # nothing to do: no version either

        await one_version_undone_by_one_revert(server, lab, move_first_down_two)

        async def change_type_and_input():
            await nb.set_cell_input("cell-1", "# title")
            await eventually(lambda: cell_sources(lab)[1] == "# title", lab.ydoc)

        await one_version_undone_by_one_revert(server, lab, change_type_and_input)

        async def tags():
            await nb.toggle_tags(["cell-0", "cell-1"], ["hide", "slow"])
            await eventually(lambda: lab.get_cell(1)["metadata"].get("tags"), lab.ydoc)
            assert sorted(lab.get_cell(1)["metadata"]["tags"]) == ["hide", "slow"]

        await one_version_undone_by_one_revert(server, lab, tags)
        await nb.toggle_tags(["cell-0"], ["hide"])
        await nb.toggle_tags(["cell-0"], ["hide", "x"])  # a tag it has goes, one it lacks comes
        assert nb.get_one({"type": "cell", "id": "cell-0"})["tags"] == {"x": True}

        async def delete_two():
            await nb.delete_cells(["cell-0", "cell-2"])
            assert ordered_ids(nb) == ["cell-1"]
            await eventually(lambda: cell_ids(lab) == ["cell-1"], lab.ydoc)

        await one_version_undone_by_one_revert(server, lab, delete_two)


async def test_an_insert_between_cells_at_the_same_position_renumbers_them_in_the_same_commit(
    server, root_dir, live
):
    write_notebook(root_dir / "nb.ipynb", ["a", "b", "c"])
    nb = await live()
    # concurrent inserts can leave two cells at one position (they sort by id then)
    nb.set({"type": "cell", "id": "cell-1", "pos": 0})
    nb.set({"type": "cell", "id": "cell-2", "pos": 0})
    nb.commit()
    await nb.sync()
    assert ordered_ids(nb) == ["cell-0", "cell-1", "cell-2"]
    async with server.ynotebook("nb.ipynb") as lab:
        before = await versions(server)
        new = await nb.insert_cell(1, "cell-1", input="between")
        assert len(await versions(server)) == len(before) + 1
        assert ordered_ids(nb) == ["cell-0", "cell-1", new, "cell-2"]
        positions = [nb.get_one({"type": "cell", "id": i})["pos"] for i in ordered_ids(nb)]
        assert positions == sorted(set(positions))  # distinct and increasing
        await eventually(lambda: cell_sources(lab) == ["a", "b", "between", "c"], lab.ydoc)


async def test_merge_keeps_the_first_cell_and_joins_inputs_and_outputs_in_order(
    server, root_dir, live
):
    write_notebook(root_dir / "nb.ipynb", ["a", "b", "c"])
    nb = await live()

    def stream(text: str) -> dict:
        return {"output_type": "stream", "name": "stdout", "text": text}

    nb.set({"type": "cell", "id": "cell-0", "output": {"0": stream("A0\n"), "1": stream("A1")}})
    nb.set({"type": "cell", "id": "cell-2", "output": {"0": stream("C0\n")}, "exec_count": 3})
    nb.commit()
    async with server.ynotebook("nb.ipynb") as lab:

        async def merge():
            kept = await nb.merge_cells(["cell-2", "cell-0"])  # the order given does not matter
            assert kept == "cell-0"
            merged = nb.get_one({"type": "cell", "id": "cell-0"})
            assert merged["input"] == "a\nc"
            outputs = [merged["output"][k]["text"] for k in sorted(merged["output"], key=int)]
            assert outputs == ["A0\n", "A1", "C0\n"]
            assert ordered_ids(nb) == ["cell-0", "cell-1"]
            await eventually(lambda: cell_sources(lab) == ["a\nc", "b"], lab.ydoc)
            texts = [o["text"] for o in lab.get_cell(0)["outputs"]]
            assert texts == ["A0\n", "A1", "C0\n"]

        await one_version_undone_by_one_revert(server, lab, merge)


@pytest.mark.parametrize(
    ("text", "cursor", "top", "bottom"),
    [
        ("é😀ab", 2, "é😀", "ab"),  # after a 2-byte and a 4-byte (2 UTF-16 units) character
        ("😀😀x", 1, "😀", "😀x"),  # a UTF-16 or UTF-8 offset of 1 would cut the emoji
        ("名前\nテスト", 2, "名前", "テスト"),  # at a line's end: the line break goes
        ("名前\nテスト", 3, "名前", "テスト"),  # at a line's start: the same
        ("x\n\ny", 2, "x", "y"),
        ("abc", 0, "", "abc"),
    ],
)
async def test_split_at_a_cursor_counted_in_characters(
    server, root_dir, live, text, cursor, top, bottom
):
    write_notebook(
        root_dir / "nb.ipynb",
        [{"cell_type": "markdown", "source": text, "metadata": {}, "id": "m"}, "after"],
    )
    nb = await live()
    async with server.ynotebook("nb.ipynb") as lab:

        async def split():
            new = await nb.split_cell("m", cursor)
            assert inputs(nb) == [top, bottom, "after"]
            assert nb.get_one({"type": "cell", "id": new})["cell_type"] == "markdown"
            await eventually(lambda: cell_sources(lab) == [top, bottom, "after"], lab.ydoc)

        await one_version_undone_by_one_revert(server, lab, split)


async def test_cell_type_and_clear_outputs(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["print(1)", "print(2)"])
    nb = await live()
    output = {"0": {"output_type": "stream", "name": "stdout", "text": "1\n"}}
    for cell_id in ("cell-0", "cell-1"):
        nb.set({"type": "cell", "id": cell_id, "output": output, "exec_count": 1})
    nb.commit()
    async with server.ynotebook("nb.ipynb") as lab:

        async def to_markdown():
            await nb.set_cell_type("cell-0", "markdown")
            cell = nb.get_one({"type": "cell", "id": "cell-0"})
            assert cell["cell_type"] == "markdown" and "output" not in cell
            await eventually(lambda: lab.get_cell(0)["cell_type"] == "markdown", lab.ydoc)

        await one_version_undone_by_one_revert(server, lab, to_markdown)

        async def clear():
            await nb.clear_outputs()
            for cell in nb.get({"type": "cell"}):
                assert not cell.get("output") and cell.get("exec_count") is None
            await eventually(lambda: not lab.get_cell(1)["outputs"], lab.ydoc)

        await one_version_undone_by_one_revert(server, lab, clear)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "explode"}, '"action" must be one of'),
        ({}, '"action" must be one of'),
        ({"action": "insert_cell", "delta": 2}, '"delta" must be 1'),
        ({"action": "insert_cell", "delta": 1, "id": "nope"}, "no such cells"),
        ({"action": "insert_cell", "delta": 1, "cell_type": "sql"}, '"cell_type" must be'),
        ({"action": "insert_cell"}, "needs ['delta']"),
        ({"action": "delete_cells", "ids": ["cell-0", "nope"]}, "no such cells"),
        ({"action": "delete_cells", "ids": "cell-0"}, "a list of cell ids"),
        ({"action": "merge_cells", "ids": ["cell-0"]}, "at least two"),
        ({"action": "split_cell", "id": "cell-0", "cursor": 99}, '"cursor" must be'),
        ({"action": "split_cell", "id": "cell-0", "cursor": -1}, '"cursor" must be'),
        ({"action": "split_cell", "id": "cell-0", "cursor": 1.5}, "must be an integer"),
        ({"action": "move_cell", "id": "cell-0", "delta": 1, "extra": 1}, "not ['extra']"),
        ({"action": "toggle_tags", "ids": ["cell-0"], "tags": [""]}, '"tags" must be'),
        ({"action": "set_kernel", "name": "no-such-kernel"}, "no kernel named"),
        ({"action": "run_cells", "ids": ["nope"]}, "no such cells"),
    ],
)
async def test_bad_parameters_answer_400_with_a_message_and_change_nothing(
    server, root_dir, body, message
):
    write_notebook(root_dir / "nb.ipynb", ["a = 1", "b = 2"])
    before_versions, before = await versions(server), content(await records(server))
    reply = await server.http.post(NB + "/actions", json=body)
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["message"]
    assert await versions(server) == before_versions
    assert content(await records(server)) == before


async def test_edit_actions_need_write_and_run_actions_need_execute(server, root_dir):
    write_notebook(root_dir / "nb.ipynb", ["a = 1"])
    reader = as_user(server, READ)
    writer = as_user(server, READ, WRITE)
    runner = as_user(server, READ, EXECUTE)
    edit = {"action": "set_cell_input", "id": "cell-0", "input": "b = 2"}
    run = {"action": "run_all_above", "id": "cell-0"}  # queues nothing: no kernel needed
    try:
        for user, body, status in [
            (reader, edit, 403),
            (runner, edit, 403),
            (writer, edit, 200),
            (reader, run, 403),
            (writer, run, 403),
            (runner, run, 200),
        ]:
            reply = await user.http.post(NB + "/actions", json=body)
            assert reply.status_code == status, (user.http.headers, body, reply.text)
    finally:
        for user in (reader, writer, runner):
            await user.aclose()


async def test_the_client_raises_the_servers_message(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["a = 1"])
    nb = await live()
    with pytest.raises(ServerError, match="no such cells") as raised:
        await nb.delete_cells(["nope"])
    assert raised.value.status == 400


def printed(nb, cell_id: str) -> str:
    output = nb.get_one({"type": "cell", "id": cell_id}).get("output") or {}
    return "".join(o.get("text", "") for o in output.values())


async def test_run_actions_queue_the_cells_above_below_or_given(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["print('a')", "print('b')", "print('c')"])
    nb = await live()
    assert await nb.run_all_below("cell-1") == ["cell-1", "cell-2"]
    await nb.wait_idle()
    assert [printed(nb, c) for c in ("cell-0", "cell-1", "cell-2")] == ["", "b\n", "c\n"]
    assert await nb.run_all_above("cell-1") == ["cell-0"]
    await nb.wait_idle()
    assert printed(nb, "cell-0") == "a\n"

    # over REST: the new cell's id, then a run of it and another cell, in the order given
    reply = await server.http.post(
        NB + "/actions",
        json={"action": "insert_cell", "delta": 1, "id": "cell-2", "input": "print('d')"},
    )
    assert reply.status_code == 200
    new = reply.json()["id"]
    assert isinstance(reply.json()["version"], int)
    reply = await server.http.post(
        NB + "/actions", json={"action": "run_cells", "ids": [new, "cell-0"]}
    )
    assert reply.json()["queued"] == [new, "cell-0"]
    await nb.sync()
    await nb.wait_idle()
    assert printed(nb, new) == "d\n"
    count = {c: nb.get_one({"type": "cell", "id": c})["exec_count"] for c in (new, "cell-0")}
    assert count[new] < count["cell-0"]

    # a new kernel of the same kind: counting starts again
    await nb.set_kernel("python3")
    await nb.run_cells(["cell-1"])
    await nb.wait_idle()
    assert nb.get_one({"type": "cell", "id": "cell-1"})["exec_count"] == 1
