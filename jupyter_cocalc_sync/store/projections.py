"""The YNotebook projection's own history, so a reopened notebook restores it, not rebuilds it.

JupyterLab clients hold Yjs items of the YNotebook they were served. If a reopened notebook
(after the document was unloaded, or after a crash) rebuilt that YNotebook, its items would be
new, and a client coming back with its old state and offline edits would duplicate every cell.
So every YNotebook update is logged like a table update (under ``<file id>#ynotebook``), in the
same group commit as the table change it shows, and a client is sent a YNotebook update only
once both are on disk. Reopening replays the log into the same items, under the same session id.

A new YNotebook built from the records the notebook was imported with is not logged: its
log starts from that build, which a replay makes again (a base, ``bases.py``).

A clean close records which table version the YNotebook shows; when the log does not end
there (a crash between two writes), the reopened YNotebook is reconciled with the table.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from .bases import Base, read_base
from .changelog import ChangeLog
from .protocol import StoreConnection

DDL = """
CREATE TABLE IF NOT EXISTS projections (
    doc TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    table_version INTEGER,
    projection_version INTEGER
) WITHOUT ROWID;
"""


@dataclass
class StoredProjection:
    """What the store knows of a notebook's YNotebook."""

    session_id: str
    #: the YNotebook as one update (None: never built, or nothing logged after its base);
    #: relative to its base, if it has one
    state: bytes | None
    #: the YNotebook was closed cleanly showing the table's current version
    in_sync: bool
    #: what its log starts from, if not from nothing (``bases.py``)
    base: Base | None = None


def projection_doc(file_id: str) -> str:
    return f"{file_id}#ynotebook"


class ProjectionLog:
    """Logs, restores and forgets YNotebook projections (module docstring)."""

    def __init__(self, changelog: ChangeLog) -> None:
        self.changelog = changelog
        self.worker = changelog.worker

    def open_blocking(self) -> None:
        self.worker.ensure_schema_blocking(DDL)

    async def session_id(self, file_id: str) -> str:
        """The notebook's collaboration session: stable for as long as its YNotebook is."""
        doc = projection_doc(file_id)

        def read_or_create(conn: StoreConnection) -> str:
            row = conn.execute("SELECT session_id FROM projections WHERE doc = ?", (doc,))
            found = row.fetchone()
            if found is not None:
                return str(found[0])
            session_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO projections (doc, session_id) VALUES (?, ?)", (doc, session_id)
            )
            return session_id

        return await self.worker.run(read_or_create)

    async def load(self, file_id: str, table_version: int) -> StoredProjection:
        doc = projection_doc(file_id)
        session_id = await self.session_id(file_id)
        state, version = await self.changelog.load(doc)
        row = await self.worker.run(
            lambda conn: conn.execute(
                "SELECT table_version, projection_version FROM projections WHERE doc = ?",
                (doc,),
            ).fetchone()
        )
        base = await self.worker.run(lambda conn: read_base(conn, doc))
        built = state is not None or base is not None
        in_sync = built and row is not None and tuple(row) == (table_version, version)
        return StoredProjection(session_id, state, in_sync, base)

    async def set_base(self, file_id: str, base: Base) -> None:
        """Record that the YNotebook's log starts from ``base`` (its build is not logged)."""
        await self.changelog.set_base(projection_doc(file_id), base)

    def append(self, file_id: str, update: bytes) -> asyncio.Future[int]:
        return self.changelog.append(projection_doc(file_id), update)

    async def closed(self, file_id: str, table_version: int) -> None:
        """Record that the YNotebook, as logged, shows ``table_version`` of the table."""
        doc = projection_doc(file_id)
        version = await self.changelog.last_version(doc)

        def write(conn: StoreConnection) -> None:
            conn.execute(
                "UPDATE projections SET table_version = ?, projection_version = ? WHERE doc = ?",
                (table_version, version, doc),
            )

        await self.worker.run(write)

    async def forget(self, file_id: str) -> None:
        """Drop the YNotebook's history (its clients will be asked to reload)."""
        doc = projection_doc(file_id)
        await self.changelog.forget(doc)
        await self.worker.run(
            lambda conn: conn.execute("DELETE FROM projections WHERE doc = ?", (doc,))
        )
