"""The store's tables in PostgreSQL, as ordered migrations.

SQLite's tables are created by each component (``CREATE TABLE IF NOT EXISTS``); a PostgreSQL
database outlives package versions and is shared by many servers, so its schema has a version:
``schema_version`` holds the number of the last migration applied, and a server applies the
ones after it, in order, in one transaction, under a transaction-level advisory lock (two
servers starting at once do not both migrate). A server refuses a schema newer than it knows.

Everything is created in the connection's current schema (the first one on its
``search_path``, by default the schema named like the role): one schema per user keeps users
apart (``pg_provision.py``).
"""

from __future__ import annotations

from .protocol import StoreConnection, transaction

#: migration n (1-based) takes the schema from version n - 1 to n; never edit a released one
MIGRATIONS: tuple[str, ...] = (
    # 1: the change log, saves, snapshots, projections, blobs, overflow, the stateless cache
    """
    CREATE TABLE changes (
        doc TEXT NOT NULL,
        version BIGINT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        author TEXT,
        data BYTEA NOT NULL,
        PRIMARY KEY (doc, version)
    );
    CREATE INDEX changes_time ON changes (time);
    CREATE TABLE saves (
        doc TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        last_modified TEXT,
        size BIGINT
    );
    CREATE TABLE snapshots (
        doc TEXT NOT NULL,
        version BIGINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (doc, version)
    );
    CREATE TABLE projections (
        doc TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        table_version BIGINT,
        projection_version BIGINT
    );
    CREATE TABLE blobs (
        sha1 TEXT PRIMARY KEY,
        mime TEXT NOT NULL,
        data BYTEA NOT NULL,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE blob_refs (
        doc TEXT NOT NULL,
        sha1 TEXT NOT NULL,
        PRIMARY KEY (doc, sha1)
    );
    CREATE INDEX blob_refs_sha1 ON blob_refs (sha1);
    CREATE TABLE overflow (
        doc TEXT NOT NULL,
        cell TEXT NOT NULL,
        seq BIGINT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (doc, cell, seq)
    );
    CREATE TABLE overflow_gaps (
        doc TEXT NOT NULL,
        cell TEXT NOT NULL,
        after_seq BIGINT NOT NULL,
        truncated BIGINT NOT NULL,
        discarded BIGINT NOT NULL,
        PRIMARY KEY (doc, cell)
    );
    CREATE TABLE stateless_results (
        key TEXT PRIMARY KEY,
        outputs TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX stateless_results_created ON stateless_results (created);
    """,
    # 2: documents whose history starts from a build of another's version (bases.py)
    """
    CREATE TABLE bases (
        doc TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        source_version BIGINT NOT NULL,
        builder TEXT NOT NULL,
        client_id BIGINT NOT NULL,
        clock BIGINT NOT NULL
    );
    """,
)


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer version of this package."""


def migrate(conn: StoreConnection, migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Apply the migrations the current schema lacks; returns the schema's version."""
    with transaction(conn):
        # one migrator per schema at a time (released at the end of the transaction)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '#migrate'))")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        current = 0 if row is None else int(row[0])
        if current > len(migrations):
            raise SchemaTooNewError(
                f"the store's schema is at version {current}, newer than this version of "
                f"jupyter-cocalc-sync knows ({len(migrations)}): upgrade the package"
            )
        for sql in migrations[current:]:
            for statement in _statements(sql):
                conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(migrations),))
        elif current < len(migrations):
            conn.execute("UPDATE schema_version SET version = ?", (len(migrations),))
    return len(migrations)


def _statements(sql: str) -> list[str]:
    """The statements of a migration (none of them contains a semicolon of its own)."""
    return [part.strip() for part in sql.split(";") if part.strip()]
