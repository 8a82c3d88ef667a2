"""The history routes answer as jupyter-collaboration's do: the same client calls (those of
jupyter-docprovider's timeline slider and ``ForkManager``) on both servers give the same
statuses and the same shapes of answers (ours adds fields the stock frontend ignores)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from helpers import poll

from .notebooks import initial_notebook
from .runner import LoopThread, Target, new_path

#: fields ours adds: the version and the authors of each step, the version shown or restored
EXTRA = {"versions", "authors", "version", "timestamp"}


def shape(value: Any) -> Any:
    """The JSON types of ``value``, recursively (a list by its first item)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if key not in EXTRA}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def answer(response: Any, *, keyed_by_fork: bool = False) -> tuple[int, Any]:
    body = response.json() if response.content else None
    if keyed_by_fork and isinstance(body, dict):
        body = sorted(json.dumps(shape(info), sort_keys=True) for info in body.values())
    return response.status_code, shape(body)


async def the_calls(target: Target, path: str) -> list[tuple[str, tuple[int, Any]]]:
    """What the slider and ForkManager do, with a JupyterLab client editing the notebook."""
    http = target.client.http
    calls: list[tuple[str, tuple[int, Any]]] = []
    async with target.client.ynotebook(path) as lab:
        source = lab.ycells[0]["source"]
        for text in ("a", "b"):
            source += text
        session = await target.client.session(path)
        room = f"json:notebook:{session['fileId']}"
        url = f"/api/collaboration/timeline/{path}?format=json&&type=notebook"

        async def history_has_edits() -> bool:
            # both servers write history behind the room (stock: its YStore, ours: the log)
            response = await http.get(url)
            return response.status_code == 200 and len(response.json()["timestamps"]) > 1

        await poll(history_has_edits)
        timeline = await http.get(url)
        calls.append(("timeline", answer(timeline)))
        fork = timeline.json()["forkRoom"]
        undo_redo = f"/api/collaboration/undo_redo/{quote(room, safe='')}"
        for action in ("undo", "redo", "restore"):
            response = await http.put(f"{undo_redo}?action={action}&&steps=1&&forkRoom={fork}")
            calls.append((action, answer(response)))
        response = await http.put(f"{undo_redo}?action=undo&&steps=1&&forkRoom={fork}")
        calls.append(("undo after restore", (response.status_code, None)))

        body = {"title": "t", "description": "d", "synchronize": True}
        created = await http.put(f"/api/collaboration/fork/{room}", content=json.dumps(body))
        calls.append(("fork", answer(created)))
        fork_room = created.json()["fork_roomid"]
        listed = await http.get(f"/api/collaboration/fork/{room}")
        calls.append(("forks", answer(listed, keyed_by_fork=True)))
        deleted = await http.delete(f"/api/collaboration/fork/{fork_room}?merge=true")
        calls.append(("delete with merge", answer(deleted)))
        again = await http.delete(f"/api/collaboration/fork/{fork_room}?merge=false")
        calls.append(("delete again", (again.status_code, None)))
        listed = await http.get(f"/api/collaboration/fork/{room}")
        calls.append(("forks after", answer(listed)))
        unknown = await http.put(
            "/api/collaboration/fork/json:notebook:no-such-id", content=json.dumps(body)
        )
        calls.append(("fork of no room", (unknown.status_code, None)))
    return calls


def test_the_history_routes_answer_as_stock(targets: tuple[Target, Target], loop: LoopThread):
    path = new_path()
    for target in targets:
        target.write(path, initial_notebook())
    stock, ours = (loop.run(the_calls(target, path)) for target in targets)
    assert [name for name, _ in ours] == [name for name, _ in stock]
    different = [
        f"{name}: stock {s} / ours {o}"
        for (name, s), (_, o) in zip(stock, ours, strict=True)
        if s != o
    ]
    assert not different, "\n".join(different)
