"""The Python client: connect to a running server and use a notebook's live SyncDB."""

from .client import CocalcSyncClient, LiveNotebook, connect
from .errors import ServerError
from .widgets import LiveWidgets

__all__ = ["CocalcSyncClient", "LiveNotebook", "LiveWidgets", "ServerError", "connect"]
