"""A real PostgreSQL server for the tests: its own cluster in a temporary folder.

Debian's ``postgresql`` package (``tests/run.sh`` installs it) brings ``initdb`` and
``pg_ctl``; PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` user the package creates. It listens on a unix socket in its folder only (no TCP
port to collide with anything), and trusts local connections: the tests connect as any role.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

#: why PostgreSQL tests cannot run here (None: they can)
UNAVAILABLE: str | None = None


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(found[0]).parent if found else None


def unavailable_reason() -> str | None:
    if _bin_dir() is None:
        return "PostgreSQL is not installed (tests/run.sh installs Debian's postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


class PostgresCluster:
    """``initdb`` + ``pg_ctl`` in a temporary folder; ``stop()`` removes it."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None, unavailable_reason()
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="cocalc-pg-"))
        self.data = self.folder / "data"
        self.socket_dir = str(self.folder)
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        # the superuser without a password (the tests' administrator), every other role with
        # its password: the user-isolation tests log in as the roles they provision
        (self.folder / "pg_hba.conf").write_text(
            "local all postgres trust\nlocal all all scram-sha-256\n"
        )
        self._run("cp", str(self.folder / "pg_hba.conf"), str(self.data / "pg_hba.conf"))
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        program = str(self.bin / tool) if (self.bin / tool).exists() else tool
        subprocess.run(
            [*self.as_user, program, *args],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=self.folder,
        )

    def start(self) -> None:
        options = f"-c listen_addresses='' -k {self.socket_dir} -c fsync=on"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop and start again: every connection is dropped, nothing committed is lost."""
        self.stop()
        self.start()

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@/{dbname}?host={self.socket_dir}"

    def admin(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def terminate_pid(self, pid: int) -> None:
        """Drop one session, as the database does with a pod that died."""
        with self.admin() as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def worker_for(spec: str):
    """The store worker of ``spec``: a PostgreSQL URL or an SQLite file's path."""
    if spec.startswith("postgresql://"):
        from jupyter_cocalc_sync.store.postgres import PostgresWorker

        return PostgresWorker(spec, lock_wait=10)
    from jupyter_cocalc_sync.store import SQLiteWorker

    return SQLiteWorker(spec)
