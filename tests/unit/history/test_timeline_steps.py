"""The timeline slider's steps: one per version, consecutive versions of one author within
the burst gap folded into the last of them."""

from __future__ import annotations

from jupyter_cocalc_sync.history.timeline import Step, timeline_steps
from jupyter_cocalc_sync.store.changelog import Version


def test_a_burst_of_one_author_is_one_step_and_others_break_it():
    versions = [
        Version(1, 100.0, None),  # the file
        Version(2, 200.0, "ann"),  # ann types a line: three versions within 5 s of each other
        Version(3, 202.0, "ann"),
        Version(4, 206.5, "ann"),
        Version(5, 207.0, "bob"),  # another author: a step of its own
        Version(6, 208.0, "ann"),  # ann again, but after bob
        Version(7, 300.0, "ann"),  # ann, after a pause
        Version(8, 301.0, "ann, bob"),  # a squashed range of both (store/history.py)
    ]
    assert timeline_steps(versions, burst_seconds=5) == [
        Step(1, 100.0, ()),
        Step(4, 206.5, ("ann",)),
        Step(5, 207.0, ("bob",)),
        Step(6, 208.0, ("ann",)),
        Step(7, 300.0, ("ann",)),
        Step(8, 301.0, ("ann", "bob")),
    ]


def test_no_burst_gap_gives_a_step_per_version_and_the_last_is_the_last_version():
    versions = [Version(v, 10.0, "ann") for v in (1, 2, 3)]
    assert [s.version for s in timeline_steps(versions, burst_seconds=0)] == [1, 2, 3]
    assert [s.version for s in timeline_steps(versions)] == [3]
    assert timeline_steps([]) == []
