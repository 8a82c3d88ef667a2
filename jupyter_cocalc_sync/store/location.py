"""Where the SQLite store is: a filesystem it can run WAL on, or one it must not.

SQLite's WAL mode keeps its index in a memory-mapped ``-shm`` file shared by every connection,
and both SQLite and the one-writer lock (``lock.py``) rely on file locks. On a network
filesystem (NFS, EFS, CIFS/SMB, Lustre, GPFS, 9p, CephFS, FUSE mounts such as sshfs or
gcsfuse) the mapping is not shared between machines and locks are unreliable or absent, so a
WAL store there can lose or corrupt committed changes. JupyterHub home directories are very
often on such a filesystem.

At start the store's filesystem is found (``/proc/self/mountinfo``, and ``statfs(2)``'s
magic number where mountinfo cannot tell), and a probe checks that locks and WAL work in the
store's folder. Then:

* a local filesystem where both work: WAL, as always;
* a network filesystem whose locks work: a rollback journal with exclusive locking and
  ``synchronous=FULL`` (no shared memory; the file stays locked while the server runs), and one
  warning naming what was found and what the operator can choose instead;
* locks that fail: the server refuses to start (a second server on the same store could not
  be kept out, and two writers would hand out the same version numbers);
* ``on_network_filesystem="refuse"``: a network filesystem is refused as well.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import StoreLocationError

#: where the kernel lists this process's mounts
MOUNTINFO = "/proc/self/mountinfo"

#: filesystem types (mountinfo's names) that are shared over a network, or served by a user
#: space process (FUSE), where WAL and locks cannot be trusted
NETWORK_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "9p",
        "ceph",
        "afs",
        "coda",
        "ncpfs",
        "glusterfs",
        "beegfs",
        "orangefs",
        "ocfs2",
        "gfs2",
        "fuse",
        "fuseblk",
    }
)

#: ``statfs(2)`` ``f_type`` magic numbers of the same filesystems (linux/magic.h and the
#: filesystems' own headers), for when mountinfo cannot be read
NETWORK_MAGIC = {
    0x6969: "nfs",
    0x517B: "smbfs",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x0BD00BD0: "lustre",
    0x47504653: "gpfs",
    0x01021997: "9p",
    0x00C36400: "ceph",
    0x5346414F: "afs",
    0x73757245: "coda",
    0x564C: "ncpfs",
    0x65735546: "fuse",
    0x7461636F: "ocfs2",
    0x01161970: "gfs2",
    0x19830326: "beegfs",
}

Journal = Literal["wal", "rollback"]
NetworkPolicy = Literal["rollback-journal", "refuse"]


@dataclass(frozen=True)
class Filesystem:
    """The mount a path is on."""

    type: str
    mount_point: str
    source: str
    options: frozenset[str]
    #: ``statfs(2)``'s ``f_type`` (None where it could not be read)
    magic: int | None = None

    @property
    def network(self) -> bool:
        base = self.type.split(".", 1)[0]  # "fuse.sshfs" is a FUSE mount
        return base in NETWORK_TYPES or self.magic in NETWORK_MAGIC

    @property
    def local_locks_only(self) -> bool:
        """An NFS mount whose locks are kept on this machine only (``nolock``, ``local_lock``)."""
        return "nolock" in self.options or any(
            option in self.options for option in ("local_lock=all", "local_lock=flock")
        )

    def describe(self) -> str:
        name = self.type
        if self.magic in NETWORK_MAGIC and self.type.split(".", 1)[0] not in NETWORK_TYPES:
            name = f"{self.type} ({NETWORK_MAGIC[self.magic]} by statfs)"
        return f"{name} ({self.source} on {self.mount_point})"


@dataclass(frozen=True)
class StorePlacement:
    """How the SQLite store runs where it is, and the line to log when that is not WAL."""

    filesystem: Filesystem
    journal: Journal
    warning: str | None = None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def parse_mountinfo(lines: Iterable[str]) -> list[Filesystem]:
    """The mounts of ``/proc/self/mountinfo``, in its order (a later mount hides an earlier
    one on the same point)."""
    mounts = []
    for line in lines:
        left, sep, right = line.rstrip("\n").partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        options = {*fields[5].split(","), *(tail[2].split(",") if len(tail) > 2 else [])}
        mounts.append(
            Filesystem(
                type=tail[0],
                mount_point=_unescape(fields[4]),
                source=_unescape(tail[1]),
                options=frozenset(options),
            )
        )
    return mounts


def _existing(path: Path) -> Path:
    """The nearest folder at or above ``path`` that exists (the store may not yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.resolve()


def statfs_magic(path: str | Path) -> int | None:
    """``statfs(2)``'s ``f_type`` of ``path`` (None where libc or the call is unavailable)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    buffer = ctypes.create_string_buffer(512)  # larger than any struct statfs
    if libc.statfs(os.fsencode(str(path)), buffer) != 0:
        return None
    # f_type is the first member, a C long (__fsword_t) on every Linux architecture
    return ctypes.c_ulong.from_buffer(buffer).value & 0xFFFFFFFF


def filesystem_of(path: str | Path, mountinfo: Iterable[str] | None = None) -> Filesystem:
    """The filesystem ``path`` is (or would be created) on."""
    where = _existing(Path(path))
    if mountinfo is None:
        try:
            with open(MOUNTINFO, encoding="utf-8", errors="replace") as f:
                mountinfo = f.readlines()
        except OSError:
            mountinfo = []
    best: Filesystem | None = None
    for mount in parse_mountinfo(mountinfo):
        point = Path(mount.mount_point)
        if (where == point or point in where.parents) and (
            best is None or len(mount.mount_point) >= len(best.mount_point)
        ):
            best = mount
    magic = statfs_magic(where)
    if best is None:
        best = Filesystem(
            type=NETWORK_MAGIC.get(magic or -1, "unknown"),
            mount_point=str(where),
            source="?",
            options=frozenset(),
        )
    return Filesystem(best.type, best.mount_point, best.source, best.options, magic)


def probe_locks(folder: Path) -> OSError | None:
    """Take and drop an exclusive ``flock`` and a POSIX record lock (SQLite's kind) on a
    file in ``folder``; the error if either fails."""
    fd, name = tempfile.mkstemp(prefix=".cocalc-sync-probe-", dir=folder)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
    except OSError as e:
        return e
    finally:
        os.close(fd)
        os.unlink(name)
    return None


def probe_wal(folder: Path) -> str | None:
    """Write in WAL mode with one connection and read with another in ``folder``; what went
    wrong, or None."""
    fd, name = tempfile.mkstemp(prefix=".cocalc-sync-probe-", suffix=".db", dir=folder)
    os.close(fd)
    try:
        with closing(sqlite3.connect(name, isolation_level=None)) as writer:
            mode = writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                return f"SQLite chose journal mode {mode!r} when asked for WAL"
            writer.execute("CREATE TABLE probe (x)")
            writer.execute("INSERT INTO probe VALUES (1)")
            with closing(sqlite3.connect(name, isolation_level=None)) as reader:
                if reader.execute("SELECT x FROM probe").fetchone() != (1,):
                    return "a second connection did not see a committed row"
    except sqlite3.Error as e:
        return f"SQLite failed in WAL mode: {e}"
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with suppress(FileNotFoundError):
                os.unlink(name + suffix)
    return None


def _choices(store: str) -> str:
    return (
        f"set c.CocalcSync.store_path to a file on local disk (it is {store}), "
        "or c.CocalcSync.store_url to a PostgreSQL database"
    )


def place_store(
    store_path: str | Path,
    *,
    on_network_filesystem: NetworkPolicy = "rollback-journal",
    mountinfo: Iterable[str] | None = None,
) -> StorePlacement:
    """Find the store's filesystem, probe it, and decide how the store runs there (module
    docstring); raises ``StoreLocationError`` where it must not run at all."""
    store = str(store_path)
    folder = Path(store).absolute().parent
    folder.mkdir(parents=True, exist_ok=True)
    fs = filesystem_of(folder, mountinfo)
    lock_error = probe_locks(folder)
    if lock_error is not None:
        reason = errno.errorcode.get(lock_error.errno or 0, str(lock_error.errno))
        raise StoreLocationError(
            f"file locks do not work where the store {store} is ({fs.describe()}: "
            f"{reason}, {lock_error.strerror}), so one writer per store cannot be enforced "
            f"and the server does not start; {_choices(store)}"
        )
    if fs.network:
        if on_network_filesystem == "refuse":
            raise StoreLocationError(
                f"the store {store} is on a network filesystem, {fs.describe()}, and "
                f"c.CocalcSync.store_on_network_filesystem is 'refuse'; {_choices(store)}"
            )
        local_only = (
            "; its locks are local to this machine (nolock/local_lock), so a server on "
            "another machine is not kept out"
            if fs.local_locks_only
            else ""
        )
        return StorePlacement(
            fs,
            "rollback",
            f"the store {store} is on a network filesystem, {fs.describe()}{local_only}: "
            "SQLite's WAL is not safe there, so the store runs with a rollback journal and "
            "exclusive locking (slower writes; no other process can read it while the server "
            f"runs); to avoid this, {_choices(store)}",
        )
    wal_problem = probe_wal(folder)
    if wal_problem is not None:
        return StorePlacement(
            fs,
            "rollback",
            f"WAL does not work where the store {store} is ({fs.describe()}: {wal_problem}): "
            "the store runs with a rollback journal and exclusive locking (slower writes); "
            f"to avoid this, {_choices(store)}",
        )
    return StorePlacement(fs, "wal")
