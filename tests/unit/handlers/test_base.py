"""The statuses the handlers answer the package's own errors with (``handlers/base.py``)."""

from __future__ import annotations

from jupyter_cocalc_sync.errors import StoreClosedError, StoreUnavailableError
from jupyter_cocalc_sync.handlers.base import status_for


def test_a_closed_store_is_answered_503_not_500() -> None:
    """A request that reaches the store while the server stops (its store closed: a browser's
    poll as the server goes down) is told the store is unavailable, 503, not answered 500 and
    logged as a crash of the server."""
    assert status_for(StoreClosedError("store x is closed")) == 503
    assert status_for(StoreUnavailableError("disk full")) == 503
