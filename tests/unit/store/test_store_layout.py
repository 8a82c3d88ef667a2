"""The SQLite store's tables of big values (the change log, its snapshots, blobs, overflow)
keep them out of their keys' b-tree (rowid tables), and a store an older version made
``WITHOUT ROWID`` is rebuilt in that layout, its rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jupyter_cocalc_sync.outputs.blobs import BlobStore
from jupyter_cocalc_sync.outputs.overflow import MoreOutputStore
from jupyter_cocalc_sync.store import ChangeLog, SQLiteWorker
from jupyter_cocalc_sync.store.sqlite import relayout

#: the two tables as the previous version created them
OLD_LAYOUT = """
CREATE TABLE changes (
    doc TEXT NOT NULL, version INTEGER NOT NULL, time REAL NOT NULL, author TEXT,
    data BLOB NOT NULL, PRIMARY KEY (doc, version)
) WITHOUT ROWID;
CREATE TABLE snapshots (
    doc TEXT NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (doc, version)
) WITHOUT ROWID;
"""


def layouts(path: Path, names: tuple[str, ...] = ("changes", "snapshots")) -> dict[str, bool]:
    """``{table: WITHOUT ROWID?}`` of the store's tables ``names``."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE name IN ({', '.join('?' * len(names))})",
            names,
        ).fetchall()
    return {name: "WITHOUT ROWID" in sql.upper() for name, sql in rows}


async def test_a_new_store_keeps_big_values_out_of_the_key_b_tree(tmp_path: Path) -> None:
    worker = SQLiteWorker(tmp_path / "log.db")
    await ChangeLog(worker).open()
    await BlobStore(worker).open()
    await MoreOutputStore(worker, max_bytes=1 << 20).open()
    worker.close()
    big = ("changes", "snapshots", "blobs", "overflow")
    assert layouts(tmp_path / "log.db", big) == dict.fromkeys(big, False)


async def test_an_old_store_is_rebuilt_in_the_new_layout_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_LAYOUT)
        conn.executemany(
            "INSERT INTO changes VALUES (?, ?, ?, ?, ?)",
            [("nb", 1, 1.0, "me", b"\x00" * 100_000), ("nb", 2, 2.0, None, b"two")],
        )
        conn.execute("INSERT INTO snapshots VALUES ('nb', 2, ?)", (b"snap",))
    assert layouts(path) == {"changes": True, "snapshots": True}
    worker = SQLiteWorker(path)
    log = ChangeLog(worker)
    await log.open()
    assert [v.to_json() for v in await log.versions("nb")] == [
        {"version": 1, "time": 1.0, "author": "me"},
        {"version": 2, "time": 2.0, "author": None},
    ]
    rows = await worker.run(
        lambda conn: conn.execute("SELECT doc, version, data FROM snapshots").fetchall()
    )
    assert rows == [("nb", 2, b"snap")]
    assert await log.last_version("nb") == 2
    worker.close()
    assert layouts(path) == {"changes": False, "snapshots": False}
    with sqlite3.connect(path) as conn:  # nothing left of the old tables, and done once
        assert relayout(conn, "CREATE TABLE IF NOT EXISTS changes (x);") == []
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not any(name.endswith("_old_layout") for name in names)
