"""The Python client: connect to a running server and use a notebook's live SyncDB."""
