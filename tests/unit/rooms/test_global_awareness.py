"""``GlobalAwareness``: the server's entries in JupyterLab's collaborators panel outlive the
global awareness room, which comes and goes with the JupyterLab windows."""

from __future__ import annotations

import json
from typing import Any

from pycrdt import Doc

from jupyter_cocalc_sync.rooms.registry import GlobalAwareness
from jupyter_cocalc_sync.transport.room import Room


def _states(room: Room) -> dict[int, Any]:
    return {cid: state for cid, state in room.awareness.states.items() if state}


def test_entries_are_kept_while_no_window_is_connected_and_given_to_the_next_room():
    awareness = GlobalAwareness()
    awareness.show_in_global_awareness(7, {"user": {"name": "a.ipynb: Kernel idle"}})
    first = Room("JupyterLab:globalAwareness", Doc())
    awareness.opened(first)
    assert _states(first) == {7: {"user": {"name": "a.ipynb: Kernel idle"}}}
    awareness.show_in_global_awareness(7, {"user": {"name": "a.ipynb: Kernel busy"}})
    awareness.show_in_global_awareness(8, {"user": {"name": "b.ipynb: Kernel idle"}})
    assert json.dumps(_states(first)[7]) == json.dumps({"user": {"name": "a.ipynb: Kernel busy"}})
    awareness.closed(first)
    awareness.show_in_global_awareness(8, None)  # b.ipynb closed while no window was there
    second = Room("JupyterLab:globalAwareness", Doc())
    awareness.opened(second)
    assert _states(second) == {7: {"user": {"name": "a.ipynb: Kernel busy"}}}
    assert 8 in _states(first)  # the room that closed is no longer written to
