"""Property: replicas that exchange updates in any order converge, and the log replays them."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import STORE, Origin
from jupyter_cocalc_sync.store import ChangeLog, LoggedTable, SQLiteWorker

#: the origin of each replica's own changes
ME = Origin.of_user("me")

REPLICAS = 3
CELL_IDS = ["a", "b", "c", "d"]
TEXT = st.text(alphabet="ab \n😀日é\u0301", max_size=12)

set_op = st.fixed_dictionaries(
    {
        "op": st.just("set"),
        "id": st.sampled_from(CELL_IDS),
        "fields": st.fixed_dictionaries(
            {},
            optional={
                "input": TEXT,
                "pos": st.floats(min_value=-100, max_value=100, allow_nan=False),
                "metadata": st.dictionaries(
                    st.sampled_from(["x", "y"]), st.one_of(st.none(), st.integers(0, 9))
                ),
                "output": st.dictionaries(
                    st.sampled_from(["0", "1", "2"]),
                    st.one_of(st.none(), st.fixed_dictionaries({"text": TEXT})),
                ),
                "collapsed": st.one_of(st.none(), st.booleans()),
            },
        ),
    }
)
delete_op = st.fixed_dictionaries({"op": st.just("delete"), "id": st.sampled_from(CELL_IDS)})
commit_op = st.just({"op": "commit"})
sync_op = st.fixed_dictionaries(
    {"op": st.just("sync"), "to": st.integers(0, REPLICAS - 1), "seed": st.integers(0, 2**16)}
)
step = st.tuples(
    st.integers(0, REPLICAS - 1), st.one_of(set_op, set_op, delete_op, commit_op, sync_op)
)


async def scenario(steps: list, folder: Path) -> None:
    worker = SQLiteWorker(folder / "log.db")
    log = ChangeLog(worker, snapshot_interval=7)  # small: exercise snapshots too
    await log.open()
    replicas = [notebook_syncdb() for _ in range(REPLICAS)]
    logged = [LoggedTable(db, log, f"replica-{i}") for i, db in enumerate(replicas)]
    # every replica's own commits, in commit order: the messages a relay would forward
    outbox: list[list[bytes]] = [[] for _ in range(REPLICAS)]
    delivered: list[set[tuple[int, int]]] = [set() for _ in range(REPLICAS)]
    for i, db in enumerate(replicas):
        db.on_update(lambda u, origin, i=i: outbox[i].append(u) if origin == ME else None)

    def deliver(to: int, rng: random.Random) -> None:
        pending = [
            (sender, n)
            for sender in range(REPLICAS)
            if sender != to
            for n in range(len(outbox[sender]))
            if (sender, n) not in delivered[to]
        ]
        # senders interleaved at random, each sender's updates in the order it sent them:
        # what y-websocket relays guarantee. (Fully out of order, yrs can lose a Map key that
        # was created and deleted in one update and created again in the next, when the
        # later update arrives first: not a path any websocket client takes.)
        rng.shuffle(pending)
        queues = {sender: sorted(n for s, n in pending if s == sender) for sender, _ in pending}
        order = [sender for sender, _ in pending]
        pending = [(sender, queues[sender].pop(0)) for sender in order]
        for sender, n in pending:
            replicas[to].apply_update(outbox[sender][n], Origin.of_user(f"replica-{sender}"))
            delivered[to].add((sender, n))

    for who, action in steps:
        db = replicas[who]
        if action["op"] == "set":
            db.set({"type": "cell", "id": action["id"], **action["fields"]}, ME)
        elif action["op"] == "delete":
            db.delete({"type": "cell", "id": action["id"]}, ME)
        elif action["op"] == "commit":
            logged[who].commit(ME)
        else:
            deliver(action["to"], random.Random(action["seed"]))
    for table in logged:
        table.commit(ME)
    for to in range(REPLICAS):
        deliver(to, random.Random(to))

    tables = [sorted(db.get(), key=lambda r: r["id"]) for db in replicas]
    assert tables[0] == tables[1] == tables[2]
    for i, table in enumerate(logged):
        await table.durable()
        replay = notebook_syncdb()
        LoggedTable(replay, log, f"replica-{i}")
        state, _ = await log.load(f"replica-{i}")
        if state is not None:
            replay.apply_update(state, STORE)
        assert sorted(replay.get(), key=lambda r: r["id"]) == tables[i]
    worker.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(step, max_size=40))
def test_replicas_converge_and_the_log_replays_each(steps):
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(steps, Path(folder)))
