"""The Python client: connect to a running server and use a notebook's live SyncDB."""

try:
    import httpx  # noqa: F401
    import wsproto  # noqa: F401
except ModuleNotFoundError as e:  # the client's dependencies are an extra
    raise ModuleNotFoundError(
        f"jupyter_cocalc_sync.client needs {e.name}, which is not installed: "
        "pip install 'jupyter-cocalc-sync[client]'",
        name=e.name,
    ) from e

from .client import CocalcSyncClient, LiveNotebook, connect
from .errors import ServerError
from .widgets import LiveWidgets

__all__ = ["CocalcSyncClient", "LiveNotebook", "LiveWidgets", "ServerError", "connect"]
