"""A notebook's states from the change log, read as records: what the replay process does
for notebooks (a revert's patch, the records at a version).

The replay process imports this module to run these functions, so it stays light: the
table's schema and nothing of the server, the YNotebook or the document (importing those
costs a worker seconds of CPU before its first replay).
"""

from __future__ import annotations

from ..origin import STORE
from ..sync.table import Record, same_json
from .schema import notebook_syncdb


def revert_patch(current: bytes, old: bytes) -> tuple[list[Record], list[Record]]:
    """``(sets, deletes)`` that turn the notebook ``current`` into ``old`` (both states as
    updates); runs in the replay process."""
    target = {(r["type"], r["id"]): r for r in records_of_state(old)}
    sets: list[Record] = []
    deletes: list[Record] = []
    for record in records_of_state(current):
        key = (record["type"], record["id"])
        wanted = target.pop(key, None)
        if wanted is None:
            deletes.append({"type": key[0], "id": key[1]})
            continue
        wanted = _live_run_state(wanted, record)
        if same_json(record, wanted):
            continue
        patch: Record = {name: None for name in record if name not in wanted}
        if isinstance(record.get("output"), dict) and isinstance(wanted.get("output"), dict):
            outputs = {k: None for k in record["output"] if k not in wanted["output"]}
            outputs.update(wanted["output"])
            wanted = {**wanted, "output": outputs}
        sets.append({**patch, **wanted})
    sets.extend(_live_run_state(wanted, None) for wanted in target.values())
    return sets, deletes


def _live_run_state(wanted: Record, current: Record | None) -> Record:
    """A revert restores content: whether a cell runs is live, never restored (an old
    ``"start"`` would ask for a run)."""
    live = (current or {}).get("state")
    if live is not None or "state" in wanted:
        return {**wanted, "state": live or "idle"}
    return wanted


def records_of_state(state: bytes) -> list[Record]:
    """The records of a notebook state (an update from the log); runs in the replay process."""
    db = notebook_syncdb()
    db.apply_update(state, STORE)
    return db.get()
