"""Clients of a server's notebook room, as JupyterLab is one: a ``jupyter_ydoc.YNotebook`` over
y-websocket, with an undo manager scoped the way ``@jupyter/ydoc`` scopes the notebook's."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from helpers import Server, eventually
from httpx_ws import aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import Array, Decoder, Doc, Map, Provider, Text, UndoManager, write_var_uint
from pycrdt.websocket.websocket import HttpxWebsocket

#: y-websocket message type of jupyter-collaboration's save request and its answer
RAW = 2
_client_numbers = itertools.count()
_save_ids = itertools.count(1)


class LabClient:
    """One connected YNotebook and the bookkeeping a JupyterLab tab keeps next to it."""

    def __init__(self, ynotebook: YNotebook) -> None:
        self.ynb = ynotebook
        self.doc: Doc = ynotebook.ydoc
        self.cells: Array = ynotebook.ycells
        self.meta: Map = self.doc.get("meta", type=Map)
        self.state: Map = ynotebook.ystate
        #: the origin of this client's undoable transactions (``YDocument.transact(f, true)``
        #: uses the document model itself; the undo manager tracks only that origin)
        self.origin = f"lab-{next(_client_numbers)}"
        # @jupyter/ydoc: ``new Y.UndoManager([], {trackedOrigins: new Set([this])})`` plus
        # ``addToScope(this._ycells)``; no capture timeout here, so that every operation is
        # its own undo step whatever the machine's speed (JupyterLab's 500 ms joins keystrokes)
        self.undo_manager = UndoManager(scopes=[self.cells], capture_timeout_millis=0)
        self.undo_manager.include_origin(self.origin)
        #: JupyterLab's last clipboard interaction ("cut", "copy", "paste"; paste keeps the ids
        #: of code cells only right after a cut)
        self.clipboard: list[dict[str, Any]] = []
        self.last_clipboard = ""
        self._new_ids = itertools.count()

    def new_cell_id(self) -> str:
        """The id ``createCell`` would give a cell without one (``UUID.uuid4()``), made
        deterministic so that both servers see the same ids."""
        return f"{next(self._new_ids):08x}-0000-4000-8000-000000000000"

    def undoable(self) -> Any:
        """``YNotebook.transact(f)``: one transaction the undo manager records."""
        return self.doc.transaction(origin=self.origin)

    def plain(self) -> Any:
        """``transact(f, false)``: one transaction the undo manager ignores."""
        return self.doc.transaction(origin="silent-change")

    def view(self) -> dict[str, Any]:
        """What this client holds: the notebook JSON (as ``toJSON`` reads it) and the state map."""
        return {
            "meta": integral(self.meta.to_py() or {}),
            "cells": [integral(_to_py(c)) for c in self.cells],
            "state": integral(self.state.to_py() or {}),
        }

    def state_vector(self) -> bytes:
        return self.doc.get_state()


def _to_py(value: Any) -> Any:
    return value.to_py() if isinstance(value, (Map, Array, Text)) else value


def integral(value: Any) -> Any:
    """``value`` with integral floats as ints (Yjs numbers are doubles)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def room_url(server: Server, session: dict[str, Any]) -> str:
    room = f"json:notebook:{session['fileId']}"
    return server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")


@contextlib.asynccontextmanager
async def connect(server: Server, path: str) -> AsyncIterator[LabClient]:
    """A JupyterLab-like client of ``path``, synced with the server."""
    session = await server.session(path)
    ynb = YNotebook(Doc())
    async with (
        aconnect_ws(room_url(server, session), server.http) as ws,
        Provider(ynb.ydoc, HttpxWebsocket(ws, f"json:notebook:{session['fileId']}")) as provider,
    ):
        async with asyncio.timeout(30):
            await provider.synced.wait()
        client = LabClient(ynb)
        await eventually(lambda: len(client.meta) > 0, ynb.ydoc, timeout=30)
        yield client


async def save(server: Server, path: str) -> str:
    """Ask the room of ``path`` to save, as JupyterLab's save command does; its answer."""
    session = await server.session(path)
    save_id = next(_save_ids)
    request = bytes([RAW]) + _var_string("save") + write_var_uint(save_id)
    async with aconnect_ws(room_url(server, session), server.http) as ws:
        await ws.send_bytes(request)
        while True:
            data = await ws.receive_bytes(timeout=60)
            if data[0] != RAW:
                continue  # the server's sync step 1
            decoder = Decoder(data[1:])
            answer = json.loads(decoder.read_var_string())
            if answer.get("responseTo") == save_id:
                return str(answer.get("status"))


def _var_string(text: str) -> bytes:
    encoded = text.encode()
    return write_var_uint(len(encoded)) + encoded
