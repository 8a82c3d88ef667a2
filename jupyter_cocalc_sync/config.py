"""The extension's configuration: its traits (``c.CocalcSync.…``) and their checks.

``app.CocalcSync`` is the extension; its settings are these. A value a check refuses stops the
server at start, naming the setting (``CocalcSync._link_jupyter_server_extension``).
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Bunch, Enum, Float, Int, Unicode, default, validate


class CocalcSyncConfig(ExtensionApp):
    """The settings of ``CocalcSync`` (configured under that name)."""

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
        help="""Per cell, the most output messages kept in the shared document (plus the
        marker). A notebook may override it in settings.""",
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
        help="""Seconds after the last change before a notebook is saved to disk (debounced);
        while changes keep coming, it is saved at least every 10 times this.""",
    )
    file_poll_interval = Float(
        1.0,
        config=True,
        help="""Seconds between checks of open notebooks' and files' files for out-of-band
        changes (git pull, another editor, deletion); changes found are merged into the live
        document. 0 turns polling off (renames and deletions through the server are still
        followed).""",
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
        .jupyter_cocalc_sync.db in the server root. One server per store: a second server
        on the same store refuses to start, naming the store and the process holding it
        (<store>.lock holds the lock). On JupyterHub with home directories on network
        storage, point it to local disk (see store_on_network_filesystem).""",
    ).tag(default_doc="<root_dir>/.jupyter_cocalc_sync.db")
    store_url = Unicode(
        "",
        config=True,
        help="""A PostgreSQL database for the store instead of the SQLite file at store_path:
        'postgresql://user:password@host:5432/dbname' (libpq's PGHOST, PGUSER, PGPASSWORD,
        PGDATABASE… fill in what the URL leaves out, so 'postgresql://' takes everything from
        the environment). Default: $COCALC_SYNC_STORE_URL, else SQLite. The tables live in the
        role's schema (one schema per user: jupyter-cocalc-sync-pg provision); one server per
        schema (an advisory lock; a second server waits store_lock_wait seconds, then refuses
        to start). Needs the 'postgres' extra.""",
    ).tag(default_doc="$COCALC_SYNC_STORE_URL or ''")
    store_lock_wait = Float(
        30.0,
        config=True,
        help="""Seconds a server waits at start for a PostgreSQL store that another server
        holds (a pod that died holds it until the database drops its connection, within about
        half a minute).""",
    )
    store_on_network_filesystem = Enum(
        ["rollback-journal", "refuse"],
        "rollback-journal",
        config=True,
        help="""What the store does when store_path is on a network filesystem (NFS, EFS,
        CIFS/SMB, Lustre, GPFS, 9p, CephFS, FUSE), where SQLite's WAL is not safe:
        'rollback-journal' runs it with a rollback journal and exclusive locking (slower; a
        warning says so), 'refuse' stops the server. A store whose file locks fail is always
        refused.""",
    )
    snapshot_interval = Int(
        1000,
        config=True,
        help="""A snapshot of a notebook's state is stored every this many changes, so
        reopening replays one snapshot and a short tail; it is built after the write, in a
        worker process.""",
    )
    history_keep_all_days = Float(
        7.0,
        config=True,
        help="""Days during which every version of a notebook is kept; older versions are
        thinned to one per hour (0: keep every version forever).""",
    )
    history_keep_hourly_days = Float(
        30.0,
        config=True,
        help="""Days during which old versions are kept one per hour; older ones are kept one
        per day (0: one per hour forever).""",
    )
    timeline_burst_seconds = Float(
        5.0,
        config=True,
        help="""JupyterLab's history slider shows one step per edit burst: consecutive
        versions of one author less than this many seconds apart are one step (0: one step
        per version).""",
    )

    # -- limits -----------------------------------------------------------------------------
    max_frame_bytes = Int(
        64 * 1024 * 1024,
        config=True,
        help="""The largest websocket message a room accepts from a client; a larger one
        closes that connection (1009). A client's first sync message holds its whole copy
        of the document, so this bounds the size of a notebook a client can bring.""",
    )
    max_body_bytes = Int(
        64 * 1024 * 1024,
        config=True,
        help="""The largest request body the REST routes of this extension accept (413
        beyond). jupyter_server's own ServerApp.max_body_size applies before it.""",
    )
    send_queue_bytes = Int(
        16 * 1024 * 1024,
        config=True,
        help="""Per room connection, the most bytes sent to a client and not yet taken by the
        network. A client past it (it stopped reading, or reads slower than the document
        changes) is closed with code 1013 and reason {"reason": "send_queue_full",
        "retry": true}; reconnecting gets it the document afresh. A connection's first
        sync (the whole document, however big) does not count: only what is sent besides
        it. One other message larger than the limit is still sent when nothing else is
        queued.""",
    )

    # -- execution --------------------------------------------------------------------------
    ydoc_extension_api = Bool(
        True,
        config=True,
        help="""Offer other server extensions jupyter_server_ydoc's in-server API
        (``settings["jupyter_server_ydoc"]``: ``get_document``, ``ywebsocket_server``) and list
        ``jupyter_server_ydoc`` as an enabled extension, so AI assistants such as
        jupyter-ai-tools edit notebooks through the server (as collaborators) with no browser
        open.""",
    )
    server_side_execution = Bool(
        True,
        config=True,
        help="""Set JupyterLab's page config serverSideExecution, so Shift+Enter asks the
        server to run the cell (outputs survive closed browsers).""",
    )

    kernel_usage_interval = Float(
        2.0,
        config=True,
        help="""Seconds between samples of a notebook kernel's memory and CPU (its process
        tree) while the notebook runs cells or its kernel is busy; shown live to every client.""",
    )
    kernel_usage_idle_interval = Float(
        10.0,
        config=True,
        help="""Seconds between samples of a kernel's usage while its notebook runs nothing
        (at most 15: clients drop the server's awareness state unless renewed within 30 s).""",
    )

    @validate("kernel_usage_interval", "kernel_usage_idle_interval")
    def _sampling_interval(self, proposal: Bunch) -> float:
        name: str = proposal["trait"].name
        value: float = proposal["value"]
        most = 15.0 if name == "kernel_usage_idle_interval" else 3600.0
        if not 0 < value <= most:
            raise ValueError(f"{name} must be more than 0 and at most {most:g} seconds")
        return value

    # -- stateless execution ----------------------------------------------------------------
    stateless_pool_size = Int(
        1,
        config=True,
        help="""Kernels kept started per kernel name for POST /api/cocalc-sync/execute (from
        the first request for that name on). Each serves one request and is stopped; 0 starts
        a kernel per request.""",
    )
    stateless_max_concurrent = Int(
        20,
        config=True,
        help="""Stateless executions running at once; more are answered 429 with
        Retry-After (cached results are still served).""",
    )
    stateless_timeout = Float(
        30.0,
        config=True,
        help="""Seconds a stateless execution may run when the request gives no timeout_ms;
        past it the kernel is interrupted, killed 0.5 s later, and the request answers
        408.""",
    )
    stateless_max_timeout = Float(
        600.0,
        config=True,
        help="The largest timeout_ms (in seconds) a stateless execution may ask for.",
    )
    stateless_cache_ttl = Float(
        3600.0,
        config=True,
        help="""Seconds a stateless result stays cached in the store (keyed by the SHA1 of
        kernel, code, history, path and output limit); 0 turns the cache off.""",
    )

    activity_interval = Float(
        60.0,
        config=True,
        help="""While any cell runs server-side, the server's last activity (what
        /api/status and JupyterHub's activity reports read) is refreshed every this many
        seconds, so an idle culler never stops a server mid-run, even one running a cell that
        prints nothing with no browser open. Messages from room clients refresh it too. Keep
        it below the culler's timeout.""",
    )

    @validate(
        "max_output_length",
        "max_output_messages",
        "max_more_output_bytes",
        "max_frame_bytes",
        "max_body_bytes",
        "send_queue_bytes",
        "stateless_max_concurrent",
    )
    def _positive(self, proposal: Bunch) -> int:
        return int(_at_least(proposal, 1, "at least 1"))

    @validate("blob_threshold", "stateless_pool_size")
    def _non_negative(self, proposal: Bunch) -> int:
        return int(_at_least(proposal, 0, ">= 0"))

    @validate("activity_interval")
    def _positive_seconds(self, proposal: Bunch) -> float:
        return _at_least(proposal, 0, "> 0 seconds", strictly=True)

    @validate(
        "autosave_delay",
        "file_poll_interval",
        "document_cleanup_delay",
        "history_keep_all_days",
        "history_keep_hourly_days",
        "timeline_burst_seconds",
        "stateless_cache_ttl",
    )
    def _non_negative_seconds(self, proposal: Bunch) -> float:
        return _at_least(proposal, 0, ">= 0 seconds")

    @default("store_url")
    def _default_store_url(self) -> str:
        return os.environ.get("COCALC_SYNC_STORE_URL", "")

    @default("store_path")
    def _default_store_path(self) -> str:
        root = getattr(self.serverapp, "root_dir", None) or os.getcwd()
        return str(Path(root) / ".jupyter_cocalc_sync.db")


def _at_least(proposal: Bunch, lowest: float, says: str, *, strictly: bool = False) -> float:
    """A setting's proposed number, unless below ``lowest`` (or equal to it, ``strictly``):
    then a ``ValueError`` naming the setting and what it ``says`` it must be."""
    value: float = proposal["value"]
    if value < lowest or (strictly and value == lowest):
        raise ValueError(f"{proposal['trait'].name} must be {says}")
    return value
