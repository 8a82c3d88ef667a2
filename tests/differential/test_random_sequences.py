"""Random sequences of every operation (hypothesis, shrinking to the shortest failing one):
ours must do what jupyter-collaboration does, up to the deliberate differences."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, seed, settings

from .notebooks import initial_notebook
from .strategies import sequences
from .verdict import check_sequence

#: ``DIFFERENTIAL_SEED=<n>`` replays a run; each run otherwise draws its own (printed on failure)
SEED = int(os.environ.get("DIFFERENTIAL_SEED") or random.randrange(2**32))
#: sequences per run (CI runs the default)
EXAMPLES = int(os.environ.get("DIFFERENTIAL_EXAMPLES") or 200)


@pytest.mark.differential_bulk
@pytest.mark.timeout(2400)  # 200 sequences, several seconds each on a loaded machine
def test_random_sequences_as_stock_does_them(targets, loop):
    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sequences)
    def check(ops):
        context = f" (DIFFERENTIAL_SEED={SEED} replays this run)"
        check_sequence(loop, targets, initial_notebook(), ops, context)

    check()
