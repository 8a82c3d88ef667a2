"""``FileFollower``: a live document and its file — debounced saves, polling, out-of-band
changes, deletion, reappearance, renames — for notebooks and plain files alike.

* Saves go through the ContentsManager (checkpoints, pre/post-save hooks, notary), debounced
  ``autosave_delay`` seconds after the last change, and at least every ``10 × autosave_delay``
  while changes keep coming (a cell printing for an hour is saved as it goes).
* The file is polled every ``poll_interval`` seconds (and checked at once when the contents API
  reports a save). When its stamp (last modified, size) is not the one this server wrote, the
  file's content is merged into the live document and, if the live document then differs from
  the file, saved back. The same check runs before every save, so a save never overwrites a
  change it has not merged.
* A deleted file is not recreated, not even when the document closes, unless the document is
  edited after the deletion; then it is recreated and the log says why. A file that is back on
  disk is merged like any out-of-band change. A rename through the server moves the document
  to the new path: edits a save skipped meanwhile go there.

What differs between kinds of document is a ``FileFormat``: what "the live document as a file"
is, what "merge the file's new content into the live document" means (a three-way record merge
for notebooks, merge3 line-wise for text, take-the-file for other formats), and what counts as
an edit that brings a deleted file back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import anyio.to_thread
from jupyter_server.utils import ensure_async
from tornado.web import HTTPError

from ..errors import StoreUnavailableError
from ..errors_seen import count_error
from .contents_off_loop import (
    ChangedDuringSave,
    hashed_model,
    off_loop_hash_algorithm,
    save_model,
    text_hash,
)

log = logging.getLogger(__name__)

Stamp = tuple[str | None, int | None]
#: a contents model, as ``ContentsManager.get`` and ``save`` give it
ContentsModel = dict[str, Any]


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


class FileAccess:
    """The file of a document, wherever it is now, through the contents manager."""

    def __init__(self, contents_manager: Contents, path: Callable[[], str]) -> None:
        self.contents_manager = contents_manager
        self._path = path

    @property
    def path(self) -> str:
        return self._path()

    async def stat(self) -> Stamp | None:
        """The file's stamp (None: there is no file)."""
        model = await self.read(None)
        return None if model is None else stamp_of(model)

    async def read(
        self, file_format: str | None, *, with_hash: bool = False
    ) -> ContentsModel | None:
        """The file's model, with its content in ``file_format`` (None: without content);
        None if there is no file. ``with_hash``: with the ``hash`` of the bytes read too
        (one read of the file, not two), when the contents manager has hashes."""
        get = self.contents_manager.get
        wanted: dict[str, Any] = {"content": file_format is not None, "format": file_format}
        algorithm = off_loop_hash_algorithm(self.contents_manager)
        if with_hash and file_format == "text" and algorithm is not None:
            # the contents manager would hash the bytes on the event loop (a 50 MB notebook:
            # tens of ms); the text it decoded strictly from UTF-8 encodes back to them
            text = await self.read(file_format)
            if text is not None:
                text.update(await anyio.to_thread.run_sync(text_hash, algorithm, text))
            return text
        try:
            if with_hash:
                try:
                    model = get(self.path, type="file", require_hash=True, **wanted)
                except TypeError:  # a contents manager from before require_hash
                    model = get(self.path, type="file", **wanted)
            else:
                model = get(self.path, type="file", **wanted)
            return await ensure_async(model)
        except HTTPError as e:
            if e.status_code == 404:
                return None
            raise

    async def hashed(self) -> tuple[Stamp, str | None] | None:
        """The file's stamp and hash from one look (None if that fails: no file, or a
        contents manager without hashes, where the frontend compares dates)."""
        try:
            model = await hashed_model(self.contents_manager, self.path)
        except HTTPError:  # no file (any more)
            return None
        except TypeError:  # a contents manager from before require_hash
            return None
        return stamp_of(model), model.get("hash")

    async def write(self, model: ContentsModel) -> ContentsModel:
        return await save_model(self.contents_manager, model, self.path)


S = TypeVar("S")


@dataclass
class Snapshot(Generic[S]):
    """The live document as a file: the contents model to save, and what the format needs to
    remember once it is saved (a version, the content)."""

    model: ContentsModel
    state: S


class FileFormat(Protocol[S]):
    """What following a file means for one kind of document (module docstring)."""

    async def unsaved(self) -> bool:
        """Whether the live document has changes the file has not."""

    async def snapshot(self) -> Snapshot[S]:
        """The live document as a file, to be saved."""

    async def saved(self, snapshot: Snapshot[S], stamp: Stamp) -> None:
        """``snapshot`` is in the file now, with ``stamp``."""

    async def merge(self, on_disk: Stamp) -> tuple[Stamp, bool]:
        """Merge the file's new content into the live document: the file's stamp now, and
        whether the live document differs from the file (then it is saved back)."""

    def edits(self) -> Hashable:
        """What people edited in the live document, as it is now (not what runs write)."""

    async def edits_at_save(self) -> Hashable:
        """``edits()`` as of the last save."""


class FileFollower(Generic[S]):
    """Keeps one live document and its file in step (module docstring)."""

    def __init__(
        self,
        file: FileAccess,
        file_format: FileFormat[S],
        *,
        autosave_delay: float,
        poll_interval: float,
    ) -> None:
        self.file = file
        self.format = file_format
        self.autosave_delay = autosave_delay
        self.poll_interval = poll_interval
        #: the file's stamp as this server last read or wrote it
        self.stamp: Stamp = (None, None)
        #: while the file is deleted: ``edits()`` when it was deleted (None: it is not)
        self.deleted: Hashable | None = None
        self._lock = asyncio.Lock()
        self._save_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._first_unsaved: float | None = None
        self._poller: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return self.file.path

    # -- saving -----------------------------------------------------------------------------

    def changed(self) -> None:
        """The document changed: save it after the autosave delay (debounced, capped).

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
            if self.deleted is None and not await self.format.unsaved():
                return "skipped"
            on_disk = await self.file.stat()
            if on_disk is None:
                if not await self._may_recreate():
                    return "skipped"
            elif self.deleted is not None:
                self._reappeared()
            return await self._write()

    async def _may_recreate(self) -> bool:
        if self.deleted is None:
            await self._gone()
        if self.format.edits() == self.deleted:
            return False
        log.warning("recreating %s: it was edited after its file was deleted", self.path)
        return True

    async def _write(self, *, again: bool = True) -> str:
        snapshot = await self.format.snapshot()
        on_disk = await self.file.stat()
        if on_disk is not None and on_disk != self.stamp:
            # the file changed out of band (checked after the snapshot: the contents API cannot
            # compare-and-swap, so the window for a lost change is a stat and a write wide)
            await self._merge_locked(on_disk)
            snapshot = await self.format.snapshot()
        try:
            model = await self.file.write(snapshot.model)
        except ChangedDuringSave as e:
            # nothing written: the change is merged (above) and the merged document saved
            if again:
                return await self._write(again=False)
            log.warning("saving %s: %s", self.path, e.log_message)
            return "failed"
        except (HTTPError, OSError) as e:
            # deleted or renamed (through the server or not) while it was written: the contents
            # API cannot lock the file, and the poller follows the deletion or the rename
            if await self.file.stat() is None:
                log.warning("saving %s: deleted or renamed meanwhile (%s)", self.path, e)
            else:  # refused (permissions) or a full disk: said to clients
                log.error("saving %s failed: %s", self.path, e)
            return "failed"
        except Exception as e:  # a bug of ours, or of a contents manager: said to clients
            count_error("file.save", e, f"saving {self.path}", logger=log)
            return "failed"
        self.stamp = stamp_of(model)
        self.deleted = None
        await self.format.saved(snapshot, self.stamp)
        return "success"

    # -- out-of-band changes ----------------------------------------------------------------

    def start_polling(self) -> None:
        if self.poll_interval > 0 and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """``check`` every ``poll_interval`` seconds until closed; a failed check is logged."""
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.check()
            except (HTTPError, OSError) as e:  # the contents manager refused, or the disk did
                log.warning("checking %s for changes on disk failed: %s", self.path, e)
            except Exception as e:  # a bug of ours: the file is still followed
                count_error(
                    "file.check", e, f"checking {self.path} for changes on disk", logger=log
                )

    async def check(self) -> bool:
        """Merge the file if it changed out of band; returns whether the live document is to
        be saved back."""
        if self._lock.locked():
            return False  # a save is running and checks the file itself
        async with self._lock:
            on_disk = await self.file.stat()
            if on_disk is None:
                if self.deleted is None:
                    await self._gone()
                return False
            if self.deleted is not None:
                self._reappeared()
            if on_disk == self.stamp:
                return False
            save_back = await self._merge_locked(on_disk)
        if save_back:
            self.changed()
        return save_back

    async def _merge_locked(self, on_disk: Stamp) -> bool:
        self.stamp, save_back = await self.format.merge(on_disk)
        return save_back

    def deleted_now(self) -> None:
        """The file was deleted just now (through the server, or found missing at open):
        edits from now on bring it back."""
        self.deleted = self.format.edits()

    def moved(self) -> None:
        """The document's path changed (a rename through the server): edits a save skipped
        meanwhile go to the new path."""
        self.deleted = None  # in case polling saw the old path gone first
        self.changed()

    async def _gone(self) -> None:
        """Polling (or a save) found the file gone, deleted at some time since the last save:
        edits since that save bring it back."""
        self.deleted = await self.format.edits_at_save()
        log.warning(
            "%s was deleted or moved: the live document is kept; the file is recreated only "
            "if it is edited",
            self.path,
        )

    def _reappeared(self) -> None:
        log.info("%s is on disk again: it is merged like any out-of-band change", self.path)
        self.deleted = None

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
