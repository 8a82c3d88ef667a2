"""Random sequences of every operation (hypothesis, shrinking to the shortest failing one):
ours must do what jupyter-collaboration does, up to the deliberate differences."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.internal.conjecture import engine

from .notebooks import initial_notebook
from .strategies import sequences
from .verdict import check_sequence

#: ``DIFFERENTIAL_SEED=<n>`` replays a run; each run otherwise draws its own (printed on failure)
SEED = int(os.environ.get("DIFFERENTIAL_SEED") or random.randrange(2**32))
#: sequences per run (CI runs the default). Each run draws new seeds, so what CI has tried
#: grows run by run; a sequence costs about half a second of CPU on both servers
EXAMPLES = int(os.environ.get("DIFFERENTIAL_EXAMPLES") or 100)
#: the run in parts of its own seed each (``SEED + part``), so that test workers share them
#: instead of one worker running minutes of sequences alone at the end of a run
PARTS = 4
#: seconds hypothesis may shrink failures for (all of them together): each attempt runs a
#: sequence on both servers (a second or two), and hypothesis's own limit (five minutes)
#: comes on top of the minutes the sequences take; after it, the shortest failing sequence
#: found so far is reported
SHRINK_SECONDS = int(os.environ.get("DIFFERENTIAL_SHRINK_SECONDS") or 150)


@pytest.mark.differential_bulk
@pytest.mark.timeout(1200)  # 25 sequences, several seconds each on a loaded machine
@pytest.mark.parametrize("part", range(PARTS))
def test_random_sequences_as_stock_does_them(targets, loop, monkeypatch, part):
    # hypothesis keeps this limit a module constant, to be monkeypatched by a test that
    # needs another one, rather than a setting
    monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", SHRINK_SECONDS)

    @seed(SEED + part)
    @settings(
        max_examples=max(1, EXAMPLES // PARTS),
        deadline=None,
        database=None,
        print_blob=True,
        # no "explain" phase: it runs failing sequences again, traced, to name the lines
        # only failures ran (lines of compare.py, which the differences name already)
        phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sequences)
    def check(ops):
        context = f" (DIFFERENTIAL_SEED={SEED} replays this run, part {part})"
        check_sequence(loop, targets, initial_notebook(), ops, context)

    check()
