"""``FileSync``: a live notebook and its ``.ipynb`` file — autosave, out-of-band merges, deletion.

* Saves go through the ContentsManager (checkpoints, pre/post-save hooks, notary), debounced
  ``autosave_delay`` seconds after the last change, and at least every ``10 × autosave_delay``
  while changes keep coming (a cell printing for an hour is saved as it goes). Outputs that
  arrive with no client connected are saved like any other change.
* The file is polled every ``file_poll_interval`` seconds (and checked at once when the contents
  API reports a save). When its stamp (last modified, size) is not the one this server wrote,
  the file is compared with what this server wrote: same hash (``touch``, a checkout of the same
  content) or the same notebook once parsed (another tool reordered the JSON keys) changes
  nothing; anything else is merged into the live table (``merge.py``) and saved back. The same
  check runs before every save, so a save never overwrites a change it has not merged.
* Outputs coming in from the file go through the ``OutputImporter`` (the limits, blob
  extraction and overflow of kernel outputs), at import and at merges alike.
* A file that cannot be parsed is not merged (and is replaced by the next save). A deleted file
  is not recreated, not even when the document closes, unless the notebook is edited after the
  deletion (inputs, cells, metadata: outputs of a cell still running do not count); then it is
  recreated and the log says why. Its history stays either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from jupyter_server.utils import ensure_async
from tornado.web import HTTPError

from ..errors import DocumentNotFoundError, NotebookFormatError, StoreUnavailableError
from ..errors_seen import count_error
from ..format.ipynb import notebook_to_records
from ..format.merge import SavedDigests, digest, disk_outputs, merge_notebook, saved_digests
from ..format.repair import LoadedNotebook, load_notebook, parse_notebook
from ..format.schema import SETTINGS_KEY
from ..format.trust import carry_trust, without_trust
from ..origin import FILE
from ..sync.table import Record

if TYPE_CHECKING:
    from .notebook import NotebookDocument

log = logging.getLogger(__name__)

Stamp = tuple[str | None, int | None]
#: a contents model, as ``ContentsManager.get`` and ``save`` give it
ContentsModel = dict[str, Any]

# what the runner writes: not an edit that brings a deleted file back
_RUNTIME_FIELDS = frozenset({"output", "exec_count", "state", "start", "end"})


def stamp_of(model: ContentsModel) -> Stamp:
    modified = model.get("last_modified")
    if isinstance(modified, datetime):
        modified = modified.isoformat()
    return (modified, model.get("size"))


class Contents(Protocol):
    """What this package uses of jupyter_server's ``ContentsManager`` (sync or async)."""

    def get(
        self,
        path: str,
        content: bool = True,
        type: str | None = None,
        format: str | None = None,
        require_hash: bool = False,
    ) -> ContentsModel | Awaitable[ContentsModel]: ...

    def save(self, model: ContentsModel, path: str) -> ContentsModel | Awaitable[ContentsModel]: ...

    def file_exists(self, path: str) -> bool | Awaitable[bool]: ...

    def dir_exists(self, path: str) -> bool | Awaitable[bool]: ...

    def exists(self, path: str) -> bool | Awaitable[bool]: ...


class OutputImporter(Protocol):
    """Turns a cell's outputs read from a file into its output map in the table."""

    async def import_outputs(
        self,
        doc_id: str,
        cell_id: str,
        outputs: list[dict[str, Any]],
        settings: Mapping[str, Any],
    ) -> dict[str, Any]:
        """``{"0": output, …}``, truncated with a "more output" marker past the limits."""


async def poll_file(
    interval: float, check: Callable[[], Awaitable[Any]], path: Callable[[], str]
) -> None:
    """Run ``check`` every ``interval`` seconds until cancelled; a failed check is logged."""
    while True:
        await asyncio.sleep(interval)
        try:
            await check()
        except (HTTPError, OSError) as e:  # the contents manager refused, or the disk did
            log.warning("checking %s for changes on disk failed: %s", path(), e)
        except Exception as e:  # a bug of ours: the file is still followed
            count_error("file.check", e, f"checking {path()} for changes on disk", logger=log)


def repaired_warning(path: str, warnings: list[str]) -> str:
    """The notebook's ``load_warning`` for what reading its file repaired (also logged)."""
    log.warning("%s is not valid nbformat; repaired: %s", path, "; ".join(warnings))
    return "Repaired when read: " + "; ".join(warnings)


def edits_digest(records: list[Record]) -> str:
    """A digest of what people edit (cells, inputs, metadata), not of what runs write."""
    kept = [
        {k: v for k, v in r.items() if k not in _RUNTIME_FIELDS}
        if r.get("type") == "cell"
        else {"metadata": r.get("metadata"), "kernel": r.get("kernel")}
        for r in records
    ]
    return digest(sorted(kept, key=lambda r: str(r.get("id"))))


class FileSync:
    """Keeps one notebook document and its file in step (module docstring)."""

    def __init__(
        self,
        document: NotebookDocument,
        contents_manager: Contents,
        *,
        autosave_delay: float,
        poll_interval: float,
        outputs: OutputImporter | None = None,
    ) -> None:
        self.document = document
        self.contents_manager = contents_manager
        self.autosave_delay = autosave_delay
        self.poll_interval = poll_interval
        self.outputs = outputs
        self.saved_version = 0
        self.stamp: Stamp = (None, None)
        self.hash: str | None = None  # of the file last saved, as the contents API reports it
        #: digests of the notebook as this server last wrote it (None: not computed yet)
        self.saved: SavedDigests | None = None
        #: while the file is deleted: the digest of the edits it had when it was deleted
        self.deleted: str | None = None
        self._lock = asyncio.Lock()
        self._save_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._first_unsaved: float | None = None
        self._poller: asyncio.Task[None] | None = None
        self.on_saved: list[Callable[[], Any]] = []

    @property
    def path(self) -> str:
        return self.document.path

    @property
    def file_missing(self) -> bool:
        return self.deleted is not None

    @file_missing.setter
    def file_missing(self, missing: bool) -> None:
        self.deleted = edits_digest(self.document.records()) if missing else None

    # -- reading ----------------------------------------------------------------------------

    async def read(self) -> tuple[str, Stamp]:
        """The file's text and stamp; ``DocumentNotFoundError`` if there is no file."""
        try:
            model = await ensure_async(
                self.contents_manager.get(self.path, content=True, type="file", format="text")
            )
        except HTTPError as e:
            if e.status_code == 404:
                raise DocumentNotFoundError(f"no notebook at {self.path!r}") from None
            if e.status_code == 400:
                raise NotebookFormatError(f"{self.path!r}: {e.log_message}") from None
            raise
        return model["content"], stamp_of(model)

    async def current_stamp(self) -> Stamp | None:
        try:
            model = await ensure_async(
                self.contents_manager.get(self.path, content=False, type="file")
            )
        except HTTPError as e:
            if e.status_code == 404:
                return None
            raise
        return stamp_of(model)

    async def import_outputs(
        self, cell_id: str, outputs: list[dict[str, Any]], settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The output map of outputs read from the file (``OutputImporter``)."""
        if self.outputs is not None:
            return await self.outputs.import_outputs(
                self.document.file_id, cell_id, outputs, settings
            )
        transform = self.document.hooks.import_output
        return {str(i): transform(o) if transform else o for i, o in enumerate(outputs)}

    async def import_records(self, records: list[Record]) -> list[Record]:
        """``records`` made from the file, with their outputs imported (``import_outputs``)."""
        settings = next((r for r in records if r["type"] == "settings"), {})
        for record in records:
            if record["type"] == "cell" and "output" in record:
                record["output"] = await self.import_outputs(
                    record["id"], disk_outputs(record), settings
                )
        return records

    # -- saving -----------------------------------------------------------------------------

    def changed(self) -> None:
        """The notebook changed: save it after the autosave delay (debounced, capped).

        Called for every change (every keystroke), so it only moves a deadline; one timer
        checks it.
        """
        now = time.monotonic()
        if self._first_unsaved is None:
            self._first_unsaved = now
        # a flood of changes does not postpone the save for ever
        self._due = min(now + self.autosave_delay, self._first_unsaved + 10 * self.autosave_delay)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.autosave_delay, self._due_yet)

    def _due_yet(self) -> None:
        self._timer = None
        wait = self._due - time.monotonic()
        if wait > 0:
            self._timer = asyncio.get_running_loop().call_later(wait, self._due_yet)
            return
        if self._save_task is not None and not self._save_task.done():
            self.changed()  # a save is running: try again after it
            return
        self._save_task = asyncio.get_running_loop().create_task(self._autosave())

    async def _autosave(self) -> None:
        try:
            await self.save()
        except StoreUnavailableError as e:  # the clients are told; the next change retries
            log.warning("autosave of %s: %s", self.path, e)
        except Exception as e:  # a bug of ours: the next change saves again
            count_error("file.autosave", e, f"autosave of {self.path}", logger=log)

    async def save(self) -> str:
        """Save now if there is anything new: ``"success"``, ``"skipped"`` or ``"failed"``."""
        async with self._lock:
            self._first_unsaved = None
            version = await self.document.table.durable()
            if version == self.saved_version and self.deleted is None:
                return "skipped"
            on_disk = await self.current_stamp()
            if on_disk is None:
                if not await self._may_recreate():
                    return "skipped"
            elif self.deleted is not None:
                self._reappeared()
            return await self._write(version)

    async def _may_recreate(self) -> bool:
        if self.deleted is None:
            await self._gone()
        records = self.document.records()
        if await anyio.to_thread.run_sync(edits_digest, records) == self.deleted:
            return False
        log.warning("recreating %s: the notebook was edited after its file was deleted", self.path)
        return True

    async def _write(self, version: int) -> str:
        records = self.document.records()
        content = await self.document.export_notebook(records)
        on_disk = await self.current_stamp()
        if on_disk is not None and on_disk != self.stamp and self.saved_version:
            # the file changed out of band (checked after the export: the contents API cannot
            # compare-and-swap, so the window for a lost change is a stat and a write wide)
            await self._merge_locked(on_disk)
            version = await self.document.table.durable()
            records = self.document.records()
            content = await self.document.export_notebook(records)
        try:
            model = await ensure_async(
                self.contents_manager.save(
                    {"type": "notebook", "format": "json", "content": content}, self.path
                )
            )
        except (HTTPError, OSError) as e:  # refused (permissions, a full disk): said to clients
            log.error("saving %s failed: %s", self.path, e)
            return "failed"
        except Exception as e:  # a bug of ours, or of a contents manager: said to clients
            count_error("file.save", e, f"saving {self.path}", logger=log)
            return "failed"
        self.stamp = stamp_of(model)
        self.saved_version = version
        self.deleted = None
        # first what a restart needs to tell the file's own changes from this save
        await self.document.changelog.mark_saved(self.document.file_id, version, *self.stamp)
        self.hash = await self.file_hash()
        self.saved = await anyio.to_thread.run_sync(lambda: saved_digests(parse_notebook(content)))
        for callback in self.on_saved:
            callback()
        return "success"

    async def file_hash(self) -> str | None:
        """The file's hash, if the file is still the one this server knows (``stamp``).

        JupyterLab compares it with the file's before saving ("File Changed" if stale); a
        touch leaves it unchanged, which tells a touch from a change.
        """
        hashed = await self._hashed()
        return hashed[1] if hashed is not None and hashed[0] == self.stamp else None

    async def _hashed(self) -> tuple[Stamp, str | None] | None:
        """The file's stamp and hash from one look (None if that fails: no file, or a
        contents manager without hashes, where the frontend compares dates)."""
        try:
            model = await ensure_async(
                self.contents_manager.get(self.path, content=False, require_hash=True)
            )
        except HTTPError:  # no file (any more)
            return None
        except TypeError:  # a contents manager from before require_hash
            return None
        return stamp_of(model), model.get("hash")

    # -- out-of-band changes ----------------------------------------------------------------

    def start_polling(self) -> None:
        if self.poll_interval > 0 and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        await poll_file(self.poll_interval, self.check, lambda: self.path)

    async def check(self) -> bool:
        """Merge the file if it changed out of band; returns whether that changed anything."""
        if self._lock.locked():
            return False  # a save is running and checks the file itself
        async with self._lock:
            on_disk = await self.current_stamp()
            if on_disk is None:
                if self.deleted is None:
                    await self._gone()
                return False
            if self.deleted is not None:
                self._reappeared()
            if on_disk == self.stamp:
                return False
            merged = await self._merge_locked(on_disk)
        if merged:
            self.changed()  # the merged document goes back to the file
        return merged

    def deleted_now(self) -> None:
        """The contents API deleted the file just now: edits from now on bring it back."""
        self.file_missing = True

    async def _gone(self) -> None:
        """Polling (or a save) found the file gone, deleted at some time since the last save:
        edits since that save bring it back."""
        saved = await self.document.records_at(self.saved_version)
        self.deleted = await anyio.to_thread.run_sync(edits_digest, saved)
        log.warning(
            "%s was deleted or moved: the live document and its history are kept; the file "
            "is recreated only if the notebook is edited",
            self.path,
        )

    def _reappeared(self) -> None:
        log.info("%s is on disk again: it is merged like any out-of-band change", self.path)
        self.deleted = None

    async def _merge_locked(self, on_disk: Stamp) -> bool:
        hashed = await self._hashed()
        if hashed is not None and hashed[1] is not None and hashed[1] == self.hash:
            self.stamp = hashed[0]  # touched, or the same content written again
            return False
        try:
            text, stamp = await self.read()
            merged = await self.merge_file(text)
        except NotebookFormatError as e:
            # a broken file: nothing to merge; the next save replaces it with the live notebook
            log.warning("%s changed on disk but cannot be read: %s", self.path, e)
            self.stamp = on_disk
            return False
        self.stamp = stamp
        if not merged:  # the same notebook: its hash now stands for what was saved
            self.hash = hashed[1] if hashed is not None and hashed[0] == stamp else None
        return merged

    async def merge_file(self, text: str) -> bool:
        """Merge the file's ``text`` into the live table; whether it differed from the save."""

        def parse() -> tuple[LoadedNotebook, str]:
            loaded = load_notebook(text)
            return loaded, digest(without_trust(loaded.notebook))

        loaded, file_digest = await anyio.to_thread.run_sync(parse)
        saved = await self.saved_digests()
        if file_digest == saved.notebook:
            log.debug("%s: same notebook as saved (formatting only)", self.path)
            return False
        await self._merge_notebook(loaded, saved)
        log.info("merged out-of-band changes of %s", self.path)
        return True

    async def _merge_notebook(self, loaded: LoadedNotebook, saved: SavedDigests) -> int:
        """Merge the notebook read from the file into the table against the saved version."""
        document = self.document
        disk = notebook_to_records(loaded.notebook)
        base = await document.records_at(self.saved_version) if self.saved_version else []
        live = document.records()
        carry_trust(disk, live)
        merge = merge_notebook(base, disk, live, saved)
        sets = {(r["type"], r["id"]): r for r in merge.sets}
        live_outputs = {r["id"]: r.get("output") or {} for r in live if r["type"] == "cell"}
        for cell_id, outputs in merge.outputs.items():
            output = await self.import_outputs(cell_id, outputs, document.settings())
            current = live_outputs.get(cell_id, {})
            record = sets.setdefault(("cell", cell_id), {"type": "cell", "id": cell_id})
            record["output"] = {**{k: None for k in current if k not in output}, **output}
        if loaded.warnings or document.settings().get("load_warning"):
            # the warning says what the last read of the file repaired (None: nothing)
            warning = repaired_warning(self.path, loaded.warnings) if loaded.warnings else None
            key = {"type": SETTINGS_KEY[0], "id": SETTINGS_KEY[1]}
            sets.setdefault(SETTINGS_KEY, key)["load_warning"] = warning
        return await document.apply(sets.values(), merge.deletes, origin=FILE)

    async def saved_digests(self) -> SavedDigests:
        """What this server last wrote (after a restart: the saved version, exported again)."""
        if self.saved is None:
            records = await self.document.records_at(self.saved_version)
            content = await self.document.export_notebook(records)
            self.saved = await anyio.to_thread.run_sync(
                lambda: saved_digests(parse_notebook(content))
            )
        return self.saved

    async def close(self, *, save: bool = True) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._save_task is not None and not self._save_task.done():
            await self._save_task
        if save:
            await self.save()
