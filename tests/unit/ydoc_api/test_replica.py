"""An extension's replica of a room: a peer of a real ``Room`` over the y-websocket protocol."""

from __future__ import annotations

from typing import Any

from helpers import eventually, poll
from jupyter_ydoc import YNotebook
from pycrdt import Doc

from jupyter_cocalc_sync.rooms.registry import Membership
from jupyter_cocalc_sync.transport.room import Peer, Room
from jupyter_cocalc_sync.ydoc_api.extension import calling_extension
from jupyter_cocalc_sync.ydoc_api.replica import Replica


class RoomOwner:
    """A room over a YNotebook, as a document owns one: applies peers' updates, publishes."""

    def __init__(self, sources: list[str]) -> None:
        self.doc: Doc[Any] = Doc()
        self.notebook = YNotebook(self.doc)
        for source in sources:
            self.notebook.append_cell({"cell_type": "code", "source": source})
        self._origin: Peer | None = None
        self.room = Room("json:notebook:f", self.doc, apply_update=self._apply)
        self.doc.observe(lambda event: self.room.publish(event.update, self._origin))
        self.authors: list[str | None] = []
        self.joins = 0

    def _apply(self, update: bytes, peer: Peer) -> None:
        self._origin = peer
        self.authors.append(peer.author)
        try:
            self.doc.apply_update(update)
        finally:
            self._origin = None

    async def join(self, peer: Peer) -> Membership:
        self.joins += 1
        self.room.connect(peer)
        return Membership(self.room, lambda: self.room.disconnect(peer))


def sources(notebook: YNotebook) -> list[str]:
    return [str(cell["source"]) for cell in notebook.ycells]


async def test_a_replica_is_a_peer_of_the_room():
    owner = RoomOwner(["a = 1"])
    replica = Replica("json:notebook:f", "notebook", "extension:x", owner.join, idle_timeout=60)
    await replica.ready()
    notebook = replica.document
    assert isinstance(notebook, YNotebook) and replica._document is notebook
    assert sources(notebook) == ["a = 1"]
    # its edits reach the room as its peer's updates, named after the extension
    notebook.append_cell({"cell_type": "code", "source": "b = 2"})
    assert sources(owner.notebook) == ["a = 1", "b = 2"]
    assert set(owner.authors) == {"extension:x"}
    # the room's own changes reach it once published
    owner.notebook.append_cell({"cell_type": "code", "source": "c = 3"})
    await eventually(lambda: sources(notebook) == ["a = 1", "b = 2", "c = 3"], replica.ydoc)
    # its awareness state is relayed to the room
    replica.awareness.set_local_state_field("user", {"name": "assistant"})
    assert owner.room.awareness.states[replica.ydoc.client_id]["user"] == {"name": "assistant"}
    replica.close()
    assert not owner.room.peers


async def test_an_idle_replica_leaves_and_an_edit_joins_it_again():
    owner = RoomOwner(["a = 1"])
    replica = Replica("json:notebook:f", "notebook", "extension:x", owner.join, idle_timeout=0.05)
    await replica.ready()

    async def left() -> bool:
        return not replica.attached and not owner.room.peers

    await poll(left, timeout=10)
    owner.notebook.append_cell({"cell_type": "code", "source": "while away"})
    replica.document.append_cell({"cell_type": "code", "source": "b = 2"})  # joins again
    await eventually(lambda: len(sources(owner.notebook)) == 3, owner.doc)
    await eventually(lambda: len(sources(replica.document)) == 3, replica.ydoc)
    assert sorted(sources(replica.document)) == sorted(sources(owner.notebook))
    assert owner.joins == 2
    replica.close()


def test_the_calling_extension_is_the_first_package_outside_the_plumbing():
    assert calling_extension(depth=1) == __name__.split(".", 1)[0]
