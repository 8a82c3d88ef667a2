"""``FileSync``: a live notebook and its ``.ipynb`` file — autosave and out-of-band merges.

* Saves go through the ContentsManager (checkpoints, pre/post-save hooks, notary), debounced
  ``autosave_delay`` seconds after the last change, and at least every ``10 × autosave_delay``
  while changes keep coming (a cell printing for an hour is saved as it goes). Outputs that
  arrive with no client connected are saved like any other change.
* The file is polled every ``file_poll_interval`` seconds. When its stamp (last modified, size)
  is not the one this server wrote, the file changed out of band: it is merged into the live
  table as a three-way diff against the last saved version (``merge.py``), then saved back.
  The same check runs before every save, so a save never overwrites a change it has not merged.
* A file that cannot be parsed is not merged (and is replaced by the next save); a file that
  disappears is not recreated until the notebook changes again; its history stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jupyter_server.utils import ensure_async
from tornado.web import HTTPError

from ..errors import DocumentNotFoundError, NotebookFormatError

if TYPE_CHECKING:
    from .document import NotebookDocument

log = logging.getLogger(__name__)

Stamp = tuple[str | None, int | None]


def stamp_of(model: dict[str, Any]) -> Stamp:
    modified = model.get("last_modified")
    if hasattr(modified, "isoformat"):
        modified = modified.isoformat()
    return (modified, model.get("size"))


class FileSync:
    """Keeps one notebook document and its file in step (module docstring)."""

    def __init__(
        self,
        document: NotebookDocument,
        contents_manager: Any,
        *,
        autosave_delay: float,
        poll_interval: float,
    ) -> None:
        self.document = document
        self.contents_manager = contents_manager
        self.autosave_delay = autosave_delay
        self.poll_interval = poll_interval
        self.saved_version = 0
        self.stamp: Stamp = (None, None)
        self.hash: str | None = None  # of the file last saved, as the contents API reports it
        self.file_missing = False
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
        except Exception:
            log.exception("autosave of %s failed", self.path)

    async def save(self) -> str:
        """Save now if there is anything new: ``"success"``, ``"skipped"`` or ``"failed"``."""
        async with self._lock:
            self._first_unsaved = None
            version = await self.document.table.durable()
            if version == self.saved_version and not self.file_missing:
                return "skipped"
            on_disk = await self.current_stamp()
            if on_disk is not None and on_disk != self.stamp and self.saved_version:
                await self._merge_locked(on_disk)
                version = await self.document.table.durable()
            content = await self.document.export_notebook()
            try:
                model = await ensure_async(
                    self.contents_manager.save(
                        {"type": "notebook", "format": "json", "content": content}, self.path
                    )
                )
            except Exception:
                log.exception("saving %s failed", self.path)
                return "failed"
            self.stamp = stamp_of(model)
            self.hash = await self.file_hash()
            self.saved_version = version
            self.file_missing = False
            await self.document.changelog.mark_saved(self.document.file_id, version, *self.stamp)
        for callback in self.on_saved:
            callback()
        return "success"

    async def file_hash(self) -> str | None:
        """JupyterLab compares this with the file's before saving ("File Changed" if stale)."""
        try:
            model = await ensure_async(
                self.contents_manager.get(self.path, content=False, require_hash=True)
            )
        except Exception:  # a contents manager without hashes: the frontend compares dates
            return None
        return model.get("hash")

    # -- out-of-band changes ----------------------------------------------------------------

    def start_polling(self) -> None:
        if self.poll_interval > 0 and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking %s for changes on disk failed", self.path)

    async def check(self) -> bool:
        """Merge the file if it changed out of band; returns whether it did."""
        if self._lock.locked():
            return False  # a save is running and checks the file itself
        async with self._lock:
            on_disk = await self.current_stamp()
            if on_disk is None:
                if not self.file_missing:
                    log.warning(
                        "%s was deleted or moved; the live document and its history are kept",
                        self.path,
                    )
                    self.file_missing = True
                return False
            self.file_missing = False
            if on_disk == self.stamp:
                return False
            await self._merge_locked(on_disk)
        self.changed()  # the merged document goes back to the file
        return True

    async def _merge_locked(self, on_disk: Stamp) -> None:
        try:
            text, stamp = await self.read()
            await self.document.merge_from_disk(text, self.saved_version)
        except NotebookFormatError as e:
            # a broken file: nothing to merge; the next save replaces it with the live notebook
            log.warning("%s changed on disk but cannot be read: %s", self.path, e)
            self.stamp = on_disk
            return
        log.info("merged out-of-band changes of %s", self.path)
        self.stamp = stamp

    async def close(self, *, save: bool = True) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._save_task is not None and not self._save_task.done():
            await self._save_task
        if save:
            await self.save()
