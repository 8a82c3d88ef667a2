"""``CellWrites``: the settings fields the runner reads and writes, as the table has them."""

from __future__ import annotations

from typing import Any

from jupyter_cocalc_sync.execution.cell_writes import CellWrites
from jupyter_cocalc_sync.format.schema import SETTINGS_KEY, notebook_syncdb
from jupyter_cocalc_sync.origin import RUNNER, Origin
from jupyter_cocalc_sync.sync.table import SyncDB

PEER = Origin.of_user("bob")


class Versions:
    """Commits the table as the runner's ``RunVersions`` does (without a change log)."""

    def __init__(self, db: SyncDB) -> None:
        self.db = db

    def commit(self, origin: Origin) -> None:
        self.db.commit(origin)


def notebook() -> tuple[SyncDB, CellWrites]:
    db = notebook_syncdb()
    db.set({"type": "settings", "id": "main", "kernel_state": "idle"}, RUNNER)
    db.commit(RUNNER)
    return db, CellWrites(db, Versions(db), 0.05, lambda: None)  # type: ignore[arg-type]


def peer_sets(db: SyncDB, **fields: Any) -> None:
    """A client's change of the settings record, applied as a peer's update."""
    client = notebook_syncdb()
    client.apply_update(db.get_update(), RUNNER)
    updates: list[bytes] = []
    client.on_update(lambda update, _origin: updates.append(update))
    client.set({"type": SETTINGS_KEY[0], "id": SETTINGS_KEY[1], **fields}, PEER)
    client.commit(PEER)
    db.apply_update(updates[0], PEER)


def stored(db: SyncDB, name: str) -> Any:
    return (db.read(SETTINGS_KEY) or {}).get(name)


def test_a_warm_runs_settings_reads_and_writes_do_not_read_the_record_again():
    db, writes = notebook()
    reads: list[Any] = []
    peek, record_map = db.peek, db.record_map
    db.peek = lambda key: reads.append(key) or peek(key)  # type: ignore[method-assign]
    db.record_map = lambda key: reads.append(key) or record_map(key)  # type: ignore[method-assign]
    writes.set_settings(kernel_state="busy")
    writes.settings("max_output_length", "max_output_messages")
    reads.clear()
    for state in ("idle", "busy", "idle", "busy"):  # (the kernel's state, twice a run)
        writes.set_settings(kernel_state=state)
        writes.settings("max_output_length", "max_output_messages")
    assert SETTINGS_KEY not in reads
    assert stored(db, "kernel_state") == "busy"


def test_a_settings_change_by_a_client_is_what_the_runner_reads_and_writes_over():
    db, writes = notebook()
    writes.set_settings(kernel_state="busy")
    assert writes.settings("max_output_length") == [None]

    peer_sets(db, kernel_state="idle", max_output_length=5)
    assert writes.settings("max_output_length") == [5]
    writes.set_settings(kernel_state="busy")  # (the record says idle now: written again)
    assert stored(db, "kernel_state") == "busy"


def test_an_object_the_runner_writes_is_read_back_as_stored():
    db, writes = notebook()
    peer_sets(db, metadata={"language_info": {"name": "python"}})
    writes.set_settings(metadata={"kernelspec": {"name": "python3"}})
    # (an object field is merged into what the record holds)
    assert writes.settings("metadata") == [
        {"language_info": {"name": "python"}, "kernelspec": {"name": "python3"}}
    ]
