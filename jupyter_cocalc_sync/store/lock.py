"""One store, one writer: an exclusive lock next to the SQLite file.

Versions are numbered by the process that writes them (it keeps the last version of every
document in memory), so two servers on one store would hand out the same numbers. The second
server refuses to start instead, naming the store and the process that holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import StoreInUseError


class StoreLock:
    """``flock`` on ``<store>.lock``, held for the life of the server."""

    def __init__(self, store_path: str | Path) -> None:
        self.path = Path(f"{store_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``StoreInUseError`` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            store = str(self.path)[: -len(".lock")]
            raise StoreInUseError(
                f"the store {store} is in use by another server (pid {holder}); "
                "give this server its own CocalcSync.store_path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
