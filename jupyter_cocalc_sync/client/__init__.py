"""The Python client: connect to a running server and use a notebook's live SyncDB."""

from .client import CocalcSyncClient, LiveNotebook, ServerError, connect

__all__ = ["CocalcSyncClient", "LiveNotebook", "ServerError", "connect"]
