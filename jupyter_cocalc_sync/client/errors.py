"""The client's own error: what the server answered when it refused a request."""

from __future__ import annotations

from ..errors import CocalcSyncError


class ServerError(CocalcSyncError):
    """The server answered a request with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
