"""``Connection``'s shell channel against a fake kernel (bare ZMQ sockets on IPC paths): sends
the socket cannot take yet go out in order once it can, a reply whose edge a send consumed is
still read; and ``decode``'s signature checks."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.session import Session

from jupyter_cocalc_sync.kernels.channels import Connection, Message, decode

#: a bound on waits that only a hang reaches
HANG = 10.0
KEY = b"test-key"


class FakeKernel:
    """The kernel's shell, iopub and stdin sockets at IPC paths, bound when asked."""

    def __init__(self, base: Path) -> None:
        self.info: dict[str, Any] = {
            "transport": "ipc",
            "ip": str(base / "kernel"),
            "shell_port": 1,
            "iopub_port": 2,
            "stdin_port": 3,
            "control_port": 4,
            "hb_port": 5,
            "key": KEY.decode(),
            "signature_scheme": "hmac-sha256",
        }
        self.context = zmq.Context()
        self.shell = self.context.socket(zmq.ROUTER)
        self.iopub = self.context.socket(zmq.PUB)
        self.stdin = self.context.socket(zmq.ROUTER)
        self.session = Session(key=KEY)

    def bind(self) -> None:
        for socket, port in ((self.shell, 1), (self.iopub, 2), (self.stdin, 3)):
            socket.bind(f"ipc://{self.info['ip']}-{port}")

    def receive(self) -> tuple[list[bytes], Message]:
        """A shell request (blocking: call it in a thread)."""
        assert self.shell.poll(int(HANG * 1000)), "no request came"
        idents, msg = self.session.recv(self.shell, mode=0)
        assert msg is not None
        return idents, msg

    def reply(self, idents: list[bytes], request: Message, msg_type: str) -> None:
        self.session.send(self.shell, msg_type, {"status": "ok"}, request, ident=idents)

    def close(self) -> None:
        self.context.destroy(linger=0)


class FakeManager:
    """What ``Connection`` asks of a kernel manager: a client of the kernel."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def client(self, session: Session, context: zmq.Context[Any]) -> AsyncKernelClient:
        client = AsyncKernelClient(session=session, context=context)
        client.load_connection_info(self.info)
        return client


class Listener:
    def __init__(self) -> None:
        self.shell: list[Message] = []

    def on_iopub(self, msg: Message) -> None:
        pass

    def on_shell(self, msg: Message) -> None:
        self.shell.append(msg)

    def on_stdin(self, msg: Message) -> None:
        pass


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    # (not in ``tmp_path``: a socket's path must fit in 107 bytes)
    with tempfile.TemporaryDirectory(prefix="kernel") as folder:
        fake = FakeKernel(Path(folder))
        yield fake
        fake.close()


@contextlib.contextmanager
def connected(kernel: FakeKernel) -> Iterator[Connection]:
    """Our connection to ``kernel`` (made on the running event loop)."""
    conn = Connection(FakeManager(kernel.info), Session(key=KEY), Listener())  # type: ignore[arg-type]
    try:
        yield conn
    finally:
        conn.close("test over")


async def test_shell_sends_made_before_the_kernel_listens_go_out_in_order_once_it_does(
    kernel: FakeKernel,
) -> None:
    with connected(kernel) as connection:
        await shell_sends_go_out_in_order(kernel, connection)


async def shell_sends_go_out_in_order(kernel: FakeKernel, connection: Connection) -> None:
    session = connection.session
    first, second = session.msg("kernel_info_request", {}), session.msg("comm_info_request", {})
    sending = [connection.start_send("shell", first), connection.start_send("shell", second)]
    assert not any(s.done() for s in sending)  # (no connection yet: the socket took neither)
    kernel.bind()
    _, received = await asyncio.to_thread(kernel.receive)
    _, then = await asyncio.to_thread(kernel.receive)
    assert [received["msg_id"], then["msg_id"]] == [first["msg_id"], second["msg_id"]]
    await asyncio.wait_for(asyncio.gather(*sending), HANG)


async def test_a_reply_whose_edge_a_send_took_is_still_read(kernel: FakeKernel) -> None:
    with connected(kernel) as connection:
        await reply_read_after_a_send(kernel, connection)


async def reply_read_after_a_send(kernel: FakeKernel, connection: Connection) -> None:
    kernel.bind()
    asking = asyncio.ensure_future(connection.request("kernel_info_request", {}))
    idents, request = await asyncio.to_thread(kernel.receive)
    kernel.reply(idents, request, "kernel_info_reply")
    # the reply is in our socket, and its descriptor's signal is taken (as a send takes it)
    shell = zmq.Socket.shadow(connection.shell.underlying)
    assert shell.poll(int(HANG * 1000), zmq.POLLIN)
    connection.start_send("shell", connection.session.msg("comm_info_request", {}))
    assert await asyncio.wait_for(asking, HANG) == {"status": "ok"}


def signed(session: Session, content: dict[str, Any]) -> list[bytes]:
    """The frames of a status message ``session`` signed (after the delimiter)."""
    _idents, frames = session.feed_identities(session.serialize(session.msg("status", content)))
    return cast("list[bytes]", frames)


def test_decode_reads_a_signed_message_and_refuses_a_replayed_or_altered_one() -> None:
    session = Session(key=KEY, digest_history_size=2)
    frames = signed(session, {"execution_state": "idle"})
    msg = decode(session, frames)
    assert msg["msg_type"] == "status" and msg["content"] == {"execution_state": "idle"}
    with pytest.raises(ValueError, match="Duplicate Signature"):
        decode(session, frames)
    altered = [*frames[:4], b'{"execution_state": "busy"}']
    with pytest.raises(ValueError, match="Invalid Signature"):
        decode(Session(key=KEY), altered)
    with pytest.raises(ValueError, match="Unsigned Message"):
        decode(session, [b"", *frames[1:]])
    for state in ("busy", "idle", "busy"):  # (the history of signatures seen stays bounded)
        decode(session, signed(session, {"execution_state": state}))
    assert len(session.digest_history) <= 2
