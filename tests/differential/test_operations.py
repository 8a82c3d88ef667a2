"""Every operation JupyterLab (and jupyter-nbmodel-client) applies, one at a time, on both
servers: the same for a client connected throughout, a client joining afterwards, the saved
file; for ours also the REST records and a version in history."""

from __future__ import annotations

import pytest

from .notebooks import initial_notebook
from .sequences import SEQUENCES
from .verdict import check_sequence


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_operation_as_stock_does_it(name, targets, loop):
    check_sequence(loop, targets, initial_notebook(), SEQUENCES[name], f" ({name})")
