"""A real server whose store is on a network filesystem, or where file locks fail.

Neither can be mounted here (no NFS server, no FUSE), so the server process is started with a
``sitecustomize`` that changes what the operating system tells it: a mountinfo saying the
state folder is an NFS mount, or ``flock``/``lockf`` failing with ENOLCK there (as they do on
an NFS mount without a lock manager). Everything else is real.
"""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest
from helpers import Server, write_notebook
from servers import ServerProcess

SITECUSTOMIZE = textwrap.dedent(
    """
    import errno, fcntl, os

    _folder = os.environ.get("TEST_NO_LOCKS_UNDER")
    if _folder:
        def _under(fd):
            fd = fd if isinstance(fd, int) else fd.fileno()
            try:
                return os.readlink(f"/proc/self/fd/{fd}").startswith(_folder)
            except OSError:
                return False

        def _failing(real):
            def call(fd, operation, *args):
                if _under(fd):
                    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
                return real(fd, operation, *args)
            return call

        fcntl.flock = _failing(fcntl.flock)
        fcntl.lockf = _failing(fcntl.lockf)

    _mountinfo = os.environ.get("TEST_MOUNTINFO")
    if _mountinfo:
        import jupyter_cocalc_sync.store.location as _location
        _location.MOUNTINFO = _mountinfo
    """
)


class PatchedServer(ServerProcess):
    """A server process whose operating system answers as ``extra_env`` says."""

    def __init__(self, root: Path, state: Path, extra_env: dict[str, str], **kwargs) -> None:
        super().__init__(root, state, **kwargs)
        self.extra_env = extra_env
        site = state / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = ":".join(
            filter(None, [str(self.state / "site"), env.get("PYTHONPATH")])
        )
        env.update(self.extra_env)
        return env


@pytest.mark.expect_errors(r"file locks do not work where the store")
def test_a_store_whose_locks_fail_refuses_to_start_and_says_why(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    state = tmp_path / "state"
    server = PatchedServer(root, state, {"TEST_NO_LOCKS_UNDER": str(state)})
    try:
        with pytest.raises(RuntimeError, match="server exited") as refused:
            server.start()
    finally:
        server.kill()
    message = str(refused.value)
    assert f"file locks do not work where the store {state / 'cocalc.db'} is" in message
    assert "ENOLCK" in message
    assert "c.CocalcSync.store_path" in message and "c.CocalcSync.store_url" in message
    assert not (state / "cocalc.db").exists()


async def test_a_store_on_nfs_runs_without_wal_and_keeps_every_edit(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
        f"40 22 0:50 / {state} rw,relatime shared:7 - nfs4 filer:/export/home "
        "rw,vers=4.2,proto=tcp\n"
    )
    write_notebook(root / "nb.ipynb", ["a = 1"])
    server = PatchedServer(
        root,
        state,
        {"TEST_MOUNTINFO": str(mountinfo)},
        config={"CocalcSync": {"autosave_delay": 3600}},
    )
    store = state / "cocalc.db"
    try:
        server.start()
        srv = Server(server.url, server.token)
        edit = {"set": [{"type": "cell", "id": "cell-0", "input": "a = 'on nfs'"}]}
        response = await srv.http.post("/api/cocalc-sync/notebooks/nb.ipynb/records", json=edit)
        assert response.status_code == 200, response.text
        await srv.aclose()
        warnings = [line for line in server.log().splitlines() if "network filesystem" in line]
        assert len(warnings) == 1, warnings
        assert "nfs4 (filer:/export/home on" in warnings[0]
        assert "rollback journal" in warnings[0] and "c.CocalcSync.store_url" in warnings[0]
        # no shared-memory index next to the store, and the file is held exclusively
        assert store.exists() and not Path(f"{store}-shm").exists()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            sqlite3.connect(store, timeout=0).execute("SELECT 1 FROM changes").fetchall()

        # the acknowledged edit survives kill -9 (autosave is off: it comes from the log)
        server.restart()
        srv = Server(server.url, server.token)
        reopened = (await srv.http.get("/api/cocalc-sync/notebooks/nb.ipynb")).json()
        await srv.aclose()
        inputs = {r["id"]: r.get("input") for r in reopened["records"] if r["type"] == "cell"}
        assert inputs == {"cell-0": "a = 'on nfs'"}
    finally:
        server.kill()
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
