"""The Jupyter Server extension: configuration, services and routes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode, default, validate


class CocalcSync(ExtensionApp):
    """CoCalc's notebook backend for Jupyter: server-owned notebooks, server-side execution."""

    name = "jupyter_cocalc_sync"
    app_name = "jupyter-cocalc-sync"
    description = __doc__ or ""
    load_other_extensions = True

    # -- outputs ----------------------------------------------------------------------------
    max_output_length = Int(
        250_000,
        config=True,
        help="""Per cell, the most characters of output (the compact JSON of the cell's output
        map) kept in the shared document; past it a {"more_output": true} marker is written and
        the rest goes to the overflow store. A notebook may override it in settings.""",
    )
    max_output_messages = Int(
        500,
        config=True,
        help="Per cell, the most output messages kept in the shared document (plus the marker).",
    )
    max_more_output_bytes = Int(
        20 * 1024 * 1024,
        config=True,
        help="""Per cell, the most bytes of overflow ("more output") kept on disk. Past it the
        head and the tail are kept and the counts of what was dropped are recorded.""",
    )
    blob_threshold = Int(
        8192,
        config=True,
        help="""Binary outputs (PNG, JPEG, GIF, WebP, PDF) larger than this many bytes are kept
        in the SHA1 blob store and referenced as "sha1:<hex>" in the document.""",
    )
    inline_more_output_on_save = Bool(
        True,
        config=True,
        help="""Whether the saved .ipynb re-inlines the overflow ("more output") of truncated
        cells. When False the file keeps the truncated output and a notice saying so.""",
    )

    # -- documents --------------------------------------------------------------------------
    autosave_delay = Float(
        1.0,
        config=True,
        help="Seconds after the last change before a notebook is saved to disk (debounced).",
    )
    file_poll_interval = Float(
        1.0,
        config=True,
        help="""Seconds between checks of open notebooks' files for out-of-band changes (git
        pull, another editor); changes found are merged into the live document.""",
    )
    document_cleanup_delay = Float(
        60.0,
        config=True,
        help="""Seconds a notebook stays in memory after its last client leaves and its run
        queue is empty.""",
    )
    store_path = Unicode(
        "",
        config=True,
        help="""The SQLite database of change logs, blobs and overflow. Default:
        .jupyter_cocalc_sync.db in the server root. On JupyterHub with home directories on
        network storage, point it to local disk.""",
    )
    snapshot_interval = Int(
        1000,
        config=True,
        help="A snapshot of a notebook's state is stored every this many changes.",
    )

    # -- execution --------------------------------------------------------------------------
    server_side_execution = Bool(
        True,
        config=True,
        help="""Set JupyterLab's page config serverSideExecution, so Shift+Enter asks the
        server to run the cell (outputs survive closed browsers).""",
    )

    @validate("max_output_length", "max_output_messages", "max_more_output_bytes")
    def _positive(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise ValueError(f"{proposal['trait'].name} must be at least 1")
        return proposal["value"]

    @validate("blob_threshold")
    def _non_negative(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise ValueError("blob_threshold must be >= 0")
        return proposal["value"]

    @validate("autosave_delay", "file_poll_interval", "document_cleanup_delay")
    def _non_negative_seconds(self, proposal: Any) -> float:
        if proposal["value"] < 0:
            raise ValueError(f"{proposal['trait'].name} must be >= 0 seconds")
        return proposal["value"]

    @default("store_path")
    def _default_store_path(self) -> str:
        root = getattr(self.serverapp, "root_dir", None) or os.getcwd()
        return str(Path(root) / ".jupyter_cocalc_sync.db")

    def initialize_settings(self) -> None:
        self.settings["cocalc_sync"] = self

    def initialize_handlers(self) -> None:
        from .handlers import routes

        page_config = self.serverapp.web_app.settings.setdefault("page_config_data", {})
        page_config["serverSideExecution"] = self.server_side_execution
        self.handlers.extend(routes())


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "jupyter_cocalc_sync", "app": CocalcSync}]
