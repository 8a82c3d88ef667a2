"""The y-websocket wire protocol, as the stock JupyterLab frontend speaks it.

Binary frames: ``[0, sub, varuint len, payload]`` sync (sub 0 = step 1 state vector,
1 = step 2 update, 2 = update), ``[1, varuint len, awareness update]``, and the RAW type 2 of
jupyter-collaboration (``[2, varstring]``: ``"save"`` + varuint id asks for a save; the answer
is a RAW JSON string).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pycrdt import Decoder, Encoder, write_var_uint

SYNC = 0
AWARENESS = 1
RAW = 2

SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2


class ProtocolError(ValueError):
    """A frame that is not a well-formed y-websocket message."""


#: what pycrdt's ``Decoder`` raises on a truncated or malformed frame: an empty one
#: (RuntimeError "Y protocol error"), a varint cut short (IndexError), a string that is not
#: UTF-8 (UnicodeDecodeError)
DECODER_ERRORS = (RuntimeError, IndexError, UnicodeDecodeError)


@dataclass(frozen=True)
class Message:
    kind: int  # SYNC, AWARENESS or RAW
    sub: int | None  # sync sub-type
    payload: bytes  # state vector, update or awareness update
    raw: str | None = None  # RAW message text
    raw_id: int | None = None  # RAW "save" request id


def _payload(decoder: Decoder, frame: bytes) -> bytes:
    length = decoder.read_var_uint()
    start = decoder.i0
    if start + length != len(frame):
        raise ProtocolError("payload length does not match the frame")
    return frame[start : start + length]


def decode(frame: bytes) -> Message:
    """Parse one frame; raises ``ProtocolError`` for anything malformed or unknown."""
    if not isinstance(frame, (bytes, bytearray)) or not frame:
        raise ProtocolError("empty or non-binary frame")
    frame = bytes(frame)
    try:
        decoder = Decoder(frame)
        kind = decoder.read_var_uint()
        if kind == SYNC:
            sub = decoder.read_var_uint()
            if sub not in (SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE):
                raise ProtocolError(f"unknown sync message type {sub}")
            return Message(SYNC, sub, _payload(decoder, frame))
        if kind == AWARENESS:
            return Message(AWARENESS, None, _payload(decoder, frame))
        if kind == RAW:
            text = decoder.read_var_string()
            raw_id = decoder.read_var_uint() if text == "save" else None
            return Message(RAW, None, b"", text, raw_id)
    except DECODER_ERRORS as e:
        raise ProtocolError(f"malformed frame: {e}") from None
    raise ProtocolError(f"unknown message type {kind}")


def sync_message(sub: int, payload: bytes) -> bytes:
    return bytes([SYNC, sub]) + write_var_uint(len(payload)) + payload


def awareness_message(payload: bytes) -> bytes:
    return bytes([AWARENESS]) + write_var_uint(len(payload)) + payload


def raw_message(value: dict[str, Any]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(RAW)
    encoder.write_var_string(json.dumps(value))
    return encoder.to_bytes()


def awareness_removal(clients: dict[int, int]) -> bytes:
    """An awareness update that removes ``clients`` (client id -> last clock)."""
    return encode_awareness(
        [(client_id, clock + 1, "null") for client_id, clock in clients.items()]
    )


AwarenessEntry = tuple[int, int, str]  # client id, clock, JSON state ("null": removed)


def decode_awareness(payload: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update; raises ``ProtocolError`` if it is malformed."""
    try:
        decoder = Decoder(payload)
        entries = []
        for _ in range(decoder.read_var_uint()):
            entries.append(
                (decoder.read_var_uint(), decoder.read_var_uint(), decoder.read_var_string())
            )
    except DECODER_ERRORS as e:
        raise ProtocolError(f"malformed awareness update: {e}") from None
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(len(entries))
    for client_id, clock, state in entries:
        encoder.write_var_uint(client_id)
        encoder.write_var_uint(clock)
        encoder.write_var_string(state)
    return encoder.to_bytes()
