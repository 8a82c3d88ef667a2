"""Where the store is: network filesystems are found and never run WAL; failing locks refuse."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from jupyter_cocalc_sync.errors import StoreLocationError
from jupyter_cocalc_sync.store import location
from jupyter_cocalc_sync.store.location import filesystem_of, parse_mountinfo, place_store
from jupyter_cocalc_sync.store.sqlite import SQLiteWorker

ROOT = "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw"


def mount_line(point: str, fstype: str, source: str, options: str = "rw") -> str:
    return f"40 22 0:50 / {point} rw,relatime shared:7 - {fstype} {source} {options}"


NETWORK = [
    ("nfs", "filer:/export/home"),
    ("nfs4", "filer:/export/home"),
    ("nfs4", "fs-0123.efs.us-east-1.amazonaws.com:/"),
    ("cifs", "//filer/home"),
    ("smb3", "//filer/home"),
    ("lustre", "10.0.0.1@tcp:/scratch"),
    ("gpfs", "gpfs0"),
    ("9p", "hostshare"),
    ("ceph", "10.0.0.2:6789:/"),
    ("fuse.sshfs", "alice@host:/home/alice"),
    ("fuse.gcsfuse", "bucket"),
    ("fuse", "s3fs"),
    ("glusterfs", "gluster:/vol"),
]
LOCAL = ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs"]


@pytest.fixture
def no_statfs_magic(monkeypatch):
    """The tests feed mountinfo; the real statfs of tmp_path (a local disk) would not vote."""
    monkeypatch.setattr(location, "statfs_magic", lambda path: None)


@pytest.mark.parametrize(("fstype", "source"), NETWORK)
def test_a_network_filesystem_is_found_and_runs_a_rollback_journal(
    tmp_path, no_statfs_magic, fstype, source
):
    mounts = [ROOT, mount_line(str(tmp_path), fstype, source)]
    fs = filesystem_of(tmp_path / "store.db", mounts)
    assert (fs.type, fs.source, fs.network) == (fstype, source, True)

    placement = place_store(tmp_path / "store.db", mountinfo=mounts)
    assert placement.journal == "rollback"
    warning = placement.warning or ""
    # one line: what was found, and what the operator can choose
    assert "\n" not in warning
    assert fstype in warning and source in warning
    assert "c.CocalcSync.store_path" in warning and "c.CocalcSync.store_url" in warning


@pytest.mark.parametrize("fstype", LOCAL)
def test_a_local_filesystem_runs_wal_silently(tmp_path, no_statfs_magic, fstype):
    mounts = [ROOT, mount_line(str(tmp_path), fstype, "dev")]
    placement = place_store(tmp_path / "store.db", mountinfo=mounts)
    assert (placement.journal, placement.warning) == ("wal", None)
    assert not placement.filesystem.network


@pytest.mark.parametrize(
    ("magic", "name"),
    [(0x6969, "nfs"), (0xFF534D42, "cifs"), (0x65735546, "fuse"), (0x0BD00BD0, "lustre")],
)
def test_statfs_finds_a_network_filesystem_that_mountinfo_does_not_show(
    tmp_path, monkeypatch, magic, name
):
    monkeypatch.setattr(location, "statfs_magic", lambda path: magic)
    fs = filesystem_of(tmp_path, [])
    assert fs.network and fs.type == name
    assert place_store(tmp_path / "store.db", mountinfo=[]).journal == "rollback"


def test_the_deepest_mount_wins_and_escaped_names_are_read(tmp_path, no_statfs_magic):
    home = tmp_path / "home dir"
    home.mkdir()
    escaped = str(home).replace(" ", "\\040")
    mounts = [
        ROOT,
        mount_line(escaped, "nfs4", "filer:/home"),
        mount_line(str(tmp_path), "xfs", "d"),
    ]
    # the nfs mount is deeper than the xfs one for a store inside it, not for one beside it
    assert filesystem_of(home / "s.db", mounts).type == "nfs4"
    assert filesystem_of(tmp_path / "s.db", mounts).type == "xfs"
    # a store that does not exist yet, in folders that do not either, is placed by its parent
    assert filesystem_of(home / "a" / "b" / "s.db", mounts).mount_point == str(home)


def test_nfs_with_local_locks_only_is_named_in_the_warning(tmp_path, no_statfs_magic):
    mounts = [ROOT, mount_line(str(tmp_path), "nfs", "filer:/home", "rw,vers=3,nolock")]
    warning = place_store(tmp_path / "s.db", mountinfo=mounts).warning or ""
    assert "local to this machine" in warning


def test_refuse_policy_stops_on_a_network_filesystem(tmp_path, no_statfs_magic):
    mounts = [ROOT, mount_line(str(tmp_path), "nfs4", "filer:/home")]
    with pytest.raises(StoreLocationError, match=r"nfs4.*store_url"):
        place_store(tmp_path / "s.db", on_network_filesystem="refuse", mountinfo=mounts)


@pytest.mark.parametrize("call", ["flock", "lockf"])
def test_failing_locks_refuse_the_store(tmp_path, monkeypatch, call):
    real = getattr(location.fcntl, call)

    def no_locks(fd, operation):
        if operation & location.fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, "No locks available")
        return real(fd, operation)

    monkeypatch.setattr(location.fcntl, call, no_locks)
    with pytest.raises(StoreLocationError, match=r"file locks do not work.*ENOLCK") as refused:
        place_store(tmp_path / "s.db")
    assert str(tmp_path / "s.db") in str(refused.value)
    # the probe leaves nothing behind
    assert list(tmp_path.iterdir()) == []


def test_wal_that_does_not_work_falls_back_to_a_rollback_journal(tmp_path, monkeypatch):
    real_connect = sqlite3.connect

    class NoWal:
        """A connection whose filesystem cannot map the shared-memory index."""

        def __init__(self, *args, **kwargs):
            self.conn = real_connect(*args, **kwargs)

        def execute(self, sql, *args):
            if sql.upper() == "PRAGMA JOURNAL_MODE=WAL":
                sql = "PRAGMA journal_mode"  # SQLite answers with the mode it keeps
            return self.conn.execute(sql, *args)

        def close(self):
            self.conn.close()

    monkeypatch.setattr(location.sqlite3, "connect", NoWal)
    placement = place_store(tmp_path / "s.db")
    assert placement.journal == "rollback"
    assert "WAL does not work" in (placement.warning or "")
    assert list(tmp_path.iterdir()) == []


def test_the_rollback_store_keeps_no_shared_memory_and_holds_its_file(tmp_path):
    path = tmp_path / "s.db"
    worker = SQLiteWorker(path, journal="rollback")
    try:
        mode = worker.run_sync(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "delete"
        worker.run_sync(lambda conn: conn.execute("CREATE TABLE t (x)"))
        worker.run_sync(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        assert not (tmp_path / "s.db-wal").exists() and not (tmp_path / "s.db-shm").exists()
        # exclusive locking: the file stays locked between transactions
        other = sqlite3.connect(path, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("SELECT * FROM t").fetchall()
        other.close()
    finally:
        worker.close()
    reopened = sqlite3.connect(path)
    assert reopened.execute("SELECT x FROM t").fetchall() == [(1,)]
    reopened.close()


def test_mountinfo_lines_without_a_separator_are_skipped():
    assert parse_mountinfo(["garbage", ROOT]) == parse_mountinfo([ROOT])
