"""A room's first sync of a document just built is sent as the updates that built it (several
messages, the last one the answer), none of them counted as a client falling behind."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from pycrdt import Array, Doc

from jupyter_cocalc_sync.origin import Origin
from jupyter_cocalc_sync.permissions import READ_ONLY
from jupyter_cocalc_sync.transport import protocol
from jupyter_cocalc_sync.transport.room import EMPTY_STATE, Room


@dataclass(eq=False)
class RecordingPeer:
    """A room peer that keeps what the room sends it, and how."""

    origin: Origin
    sent: list[tuple[protocol.Message, bool, bool]] = field(default_factory=list)

    def send(self, data: bytes, *, first_sync: bool = False, last: bool = True) -> None:
        self.sent.append((protocol.decode(data), first_sync, last))

    def close(self, code: int, reason: str) -> None:
        raise AssertionError(f"closed: {code} {reason}")


def built_in_pieces(items: int) -> tuple[Doc[Any], list[bytes]]:
    """A document built one item per transaction, and the update of each."""
    doc: Doc[Any] = Doc()
    pieces: list[bytes] = []
    subscription = doc.observe(lambda event: pieces.append(event.update))
    log = doc.get("log", type=Array)
    for n in range(items):
        log.append(f"item {n}")
    doc.unobserve(subscription)
    return doc, pieces


async def answered(room: Room, peer: RecordingPeer, state: bytes) -> None:
    """Ask the room for what ``state`` lacks; return once it answered (its task ran)."""
    room.receive(peer, protocol.sync_message(protocol.SYNC_STEP1, state))
    async with asyncio.timeout(10):
        while not any(m.sub == protocol.SYNC_STEP2 for m, *_ in peer.sent):
            await asyncio.sleep(0)


async def test_the_first_sync_of_a_built_document_is_the_updates_that_built_it() -> None:
    doc, pieces = built_in_pieces(3)
    room = Room("r", doc)
    room.offer_whole_update(doc.get_state(), pieces)
    peer = RecordingPeer(Origin.of_peer("ada", READ_ONLY))
    room.connect(peer)
    peer.sent.clear()  # (the room's own question)
    await answered(room, peer, EMPTY_STATE)
    kinds = [message.sub for message, *_ in peer.sent]
    assert kinds == [protocol.SYNC_UPDATE, protocol.SYNC_UPDATE, protocol.SYNC_STEP2]
    assert [message.payload for message, *_ in peer.sent] == pieces
    assert all(first_sync for _, first_sync, _ in peer.sent)
    assert [last for *_, last in peer.sent] == [False, False, True]
    client: Doc[Any] = Doc()
    for message, *_ in peer.sent:
        client.apply_update(message.payload)
    assert list(client.get("log", type=Array)) == ["item 0", "item 1", "item 2"]


@pytest.mark.parametrize("changed", [False, True])
async def test_a_document_changed_since_or_a_client_with_state_gets_one_update(
    changed: bool,
) -> None:
    """The pieces answer only an empty client of the document as it was built."""
    doc, pieces = built_in_pieces(3)
    room = Room("r", doc)
    room.offer_whole_update(doc.get_state(), pieces)
    client: Doc[Any] = Doc()
    if changed:
        doc.get("log", type=Array).append("later")
    else:
        client.apply_update(pieces[0])  # a client that has the first item already
    peer = RecordingPeer(Origin.of_peer("ada", READ_ONLY))
    room.connect(peer)
    peer.sent.clear()
    await answered(room, peer, client.get_state())
    assert [(m.sub, first_sync, last) for m, first_sync, last in peer.sent] == [
        (protocol.SYNC_STEP2, True, True)
    ]
    client.apply_update(peer.sent[0][0].payload)
    expected = ["item 0", "item 1", "item 2", *(["later"] if changed else [])]
    assert list(client.get("log", type=Array)) == expected
