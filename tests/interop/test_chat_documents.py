"""Document types other packages register through jupyter_ydoc's entry points (here
jupyterlab-chat's ``chat``) are served like plain files: two clients sync a chat, it is saved,
and it survives a restart. jupyterlab-chat's server extension hands an open chat to other
extensions (jupyter-ai's personas answer through it)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from helpers import Server, eventually
from httpx_ws import aconnect_ws
from jupyterlab_chat.models import NewMessage
from jupyterlab_chat.ychat import YChat
from pycrdt import Doc, Provider
from pycrdt.websocket.websocket import HttpxWebsocket
from servers import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def jp_server_config(jp_server_config):
    jp_server_config["ServerApp"]["jpserver_extensions"]["jupyterlab_chat"] = True
    return jp_server_config


@contextlib.asynccontextmanager
async def chat_client(server: Server, path: str) -> AsyncIterator[YChat]:
    """A jupyterlab-chat client: a YChat synced over the chat's collaboration room."""
    session = await server.session(path, "text", "chat")
    room = f"text:chat:{session['fileId']}"
    url = server.ws_url(f"/api/collaboration/room/{room}?sessionId={session['sessionId']}")
    chat = YChat(Doc())
    async with aconnect_ws(url, server.http) as ws, Provider(chat.ydoc, HttpxWebsocket(ws, room)):
        yield chat


def bodies(chat: YChat) -> list[str]:
    return [m.body for m in chat.get_messages()]


async def test_a_chat_syncs_between_clients_and_survives_a_restart(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "team.chat").write_text("{}")
    config = {"CocalcSync": {"autosave_delay": 0.2}}
    process = ServerProcess(root, tmp_path / "state", config=config)
    process.start()
    try:
        server = Server(process.url, process.token)
        async with chat_client(server, "team.chat") as ada, chat_client(server, "team.chat") as bo:
            ada.add_message(NewMessage(body="hello", sender="ada"))
            await eventually(lambda: bodies(bo) == ["hello"], bo.ydoc)
            bo.add_message(NewMessage(body="hi ada", sender="bo"))
            await eventually(lambda: bodies(ada) == ["hello", "hi ada"], ada.ydoc)

        def saved() -> bool:
            content = json.loads((root / "team.chat").read_text() or "{}")
            return [m["body"] for m in content.get("messages", [])] == ["hello", "hi ada"]

        await eventually(saved)
        await server.aclose()
        process.restart()
        server = Server(process.url, process.token)
        async with chat_client(server, "team.chat") as later:
            await eventually(lambda: bodies(later) == ["hello", "hi ada"], later.ydoc)
        await server.aclose()
    finally:
        process.stop()


@pytest.mark.cocalc(document_cleanup_delay=30)
async def test_jupyterlab_chat_hands_an_open_chat_to_other_extensions(
    server, root_dir, jp_serverapp
):
    (root_dir / "team.chat").write_text("{}")
    chat_manager = jp_serverapp.web_app.settings["chat_manager"]
    opened: list[str] = []

    async def on_chat_event(logger, schema_id: str, data: dict) -> None:
        if data.get("action") == "opened":
            opened.append(data["chat_id"])

    chat_manager.observe_chats(on_chat_event)
    async with chat_client(server, "team.chat") as ada:
        ada.add_message(NewMessage(body="hello", sender="ada"))
        # the room's "initialize" event: the ChatManager took the chat's document
        await eventually(lambda: opened)
        model = chat_manager.get(opened[0])
        await eventually(lambda: bodies(model) == ["hello"], model.ydoc)
        # an extension answering in it (as jupyter-ai's personas do) is a collaborator
        model.add_message(NewMessage(body="hi, I am an assistant", sender="persona"))
        await eventually(lambda: bodies(ada) == ["hello", "hi, I am an assistant"], ada.ydoc)

    def saved() -> bool:
        content = json.loads((root_dir / "team.chat").read_text() or "{}")
        return [m["body"] for m in content.get("messages", [])] == [
            "hello",
            "hi, I am an assistant",
        ]

    await eventually(saved)
