"""``NotebookDocument``: one open notebook, shared by all its clients.

It holds the notebook's table (``SyncDB``), its change log and its file (a ``FileFollower`` with
a ``NotebookFile``), all built by its constructor. What its clients see, and when, is
``Broadcast``'s; the rest of an open notebook (its rooms, its YNotebook, its runner) is built
around it in one place (``execution/open_notebook.py``).

Opening reads the change log and the file. With no history, the file is imported (the same file
always gives the same initial update). With history, the log is the document; if the file
changed since this server last saved it (edited while no server had it open), the change is
merged as a three-way diff against the saved version — never a blind overwrite either way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from ..errors import DocumentNotFoundError, NotebookFormatError, StoreUnavailableError
from ..errors_seen import count_error
from ..format.ipynb import (
    OutputsOf,
    in_notebook_order,
    initial_update,
    notebook_to_records,
    ordered_outputs,
    records_to_notebook,
)
from ..format.repair import LoadedNotebook, load_notebook
from ..format.schema import SETTINGS_KEY, notebook_syncdb
from ..format.states import records_of_state, revert_patch
from ..format.trust import (
    Notary,
    is_signed,
    mark_code_cells,
    notary_of,
    outputs_need_trust,
    signature_of,
)
from ..origin import FILE, Origin, OriginKind
from ..outputs.hooks import NamedDocument, OutputHooks
from ..store import ChangeLog, LoggedTable
from ..store.changelog import Version
from ..store.projections import ProjectionLog
from ..sync.slices import read_in_slices
from ..sync.table import Record, SyncDB
from ..transport.protocol import Message
from ..transport.room import Peer
from ..ynotebook.projection import YNotebookProjection
from .following import Contents, FileAccess, FileFollower
from .notebook_file import NotebookFile, OutputImporter, repaired_warning

log = logging.getLogger(__name__)

#: seconds a closing document waits for its last save and its last log write
CLOSE_TIMEOUT = 30.0
#: records a revert writes in one version (a big revert is several versions)
REVERT_CHUNK = 32


@dataclass
class DocumentSettings:
    """What a document needs from the extension's configuration."""

    autosave_delay: float = 1.0
    file_poll_interval: float = 1.0


class MetadataSource(Protocol):
    """Adds to the notebook's metadata when it is saved or exported (the widget state)."""

    async def notebook_metadata(self, records: list[Record]) -> dict[str, Any]: ...


class NotebookDocument:
    """One open notebook (module docstring)."""

    def __init__(
        self,
        path: str,
        file_id: str,
        *,
        changelog: ChangeLog,
        contents_manager: Contents,
        settings: DocumentSettings | None = None,
        hooks: Callable[[NamedDocument], OutputHooks] | None = None,
        outputs: OutputImporter | None = None,
        metadata: MetadataSource | None = None,
    ) -> None:
        settings = settings or DocumentSettings()
        self.path = path
        self.file_id = file_id
        self.changelog = changelog
        #: how outputs change between the file, the table and JupyterLab (``hooks(self)``:
        #: they read the document's path when they run)
        self.hooks = hooks(self) if hooks is not None else OutputHooks()
        #: adds to the notebook's metadata when it is saved or exported (the widget state)
        self.metadata = metadata
        #: the collaboration session: it lasts as long as the YNotebook's logged history, so
        #: a JupyterLab client coming back (after an unload or a restart) merges its state
        self.session_id = uuid.uuid4().hex
        self.projection_log = ProjectionLog(changelog)
        self.db: SyncDB = notebook_syncdb()
        self.table = LoggedTable(self.db, changelog, file_id)
        file = FileAccess(contents_manager, lambda: self.path)
        #: what following the file means for a notebook (the version saved, merges, the hash)
        self.notebook_file = NotebookFile(self, file, outputs=outputs)
        self.files: FileFollower[int] = FileFollower(
            file,
            self.notebook_file,
            autosave_delay=settings.autosave_delay,
            poll_interval=settings.file_poll_interval,
        )
        #: why the change log cannot be written right now (None: it can)
        self.write_error: BaseException | None = None
        self.clients: set[Peer] = set()
        self.closed = False
        #: the YNotebook built from the records just imported from the file, while the rest
        #: of the opening goes on (``open(ynotebook=True)``, ``take_ynotebook``)
        self._ynotebook: asyncio.Task[YNotebookProjection] | None = None
        #: the table version that YNotebook is built from (the import's)
        self.ynotebook_source_version: int | None = None
        #: characters of the file's text read while opening (parsed, imported or merged)
        self.opening_read = 0
        self._unsubscribe = self.db.on_update(self._on_update)
        self._unwatch = changelog.watch(file_id, self._write_status)

    # -- opening ----------------------------------------------------------------------------

    async def open(self, *, ynotebook: bool = False) -> None:
        """Load the notebook from its log and its file. ``ynotebook``: a JupyterLab client is
        coming, so a notebook imported now has its YNotebook built from the imported records
        while the import is written to the log (``take_ynotebook``)."""
        try:
            await self._open(ynotebook)
        except BaseException:  # (re-raised) a YNotebook being built is not wanted any more
            self.drop_ynotebook()
            raise

    async def _open(self, ynotebook: bool) -> None:
        has_history = await self.table.load()
        try:
            await self._open_file(has_history, ynotebook)
        except NotebookFormatError:
            # a save cut off by a crash leaves the file half written; the contents manager
            # may still hold the file from before it (``restore_interrupted_save``)
            if not await self.notebook_file.restore_interrupted_save():
                raise
            await self._open_file(has_history, ynotebook)
        if not has_history:
            await self.projection_log.forget(self.file_id)  # a new notebook: a new session
        self.session_id = await self.projection_log.session_id(self.file_id)
        if self.files.deleted is None:
            self.notebook_file.hash = await self.notebook_file.hash_after_read(self.files.stamp)
        self.files.start_polling()

    async def _open_file(self, has_history: bool, ynotebook: bool) -> None:
        """Read the file: import it into a table with no history (``ynotebook``: its YNotebook
        built meanwhile), else merge what changed on disk since the last save."""
        try:
            text, stamp = await self.notebook_file.read()
        except DocumentNotFoundError:
            if not has_history:
                raise
            text, stamp = None, (None, None)
            self.files.deleted_now()
        self.opening_read = len(text or "")
        if not has_history:
            assert text is not None
            # parsing, converting and building the first update of a big notebook are CPU
            # work: in a thread, on objects nothing else sees yet
            notary = notary_of(self.files.file.contents_manager)
            loaded, records, signature = await anyio.to_thread.run_sync(
                lambda: _read_records(text, notary)
            )
            # the file's outputs keep the trust they had on disk
            mark_code_cells(
                records, notary is not None and signature != "" and is_signed(notary, signature)
            )
            records = await self.notebook_file.import_records(records)
            if loaded.warnings:
                records[0]["load_warning"] = repaired_warning(self.path, loaded.warnings)
            update = await anyio.to_thread.run_sync(lambda: initial_update(records))
            self.db.load(update, records, FILE)
            if ynotebook:
                # built a few cells per loop turn while the store's thread writes the import:
                # no client sees it before both that write and its own are durable (the
                # notebook room waits for both), and it has no listener until then
                self._ynotebook = asyncio.ensure_future(
                    YNotebookProjection.built_in_steps(
                        self.db, records=records, **self.projection_options()
                    )
                )
            version = await self.table.durable()
            if ynotebook:
                self.ynotebook_source_version = version
            self.notebook_file.saved_version, self.files.stamp = version, stamp
            await self.changelog.mark_saved(self.file_id, version, *stamp)
        else:
            saved = await self.changelog.last_saved(self.file_id)
            self.notebook_file.saved_version = saved[0] if saved else 1
            saved_stamp = (saved[1], saved[2]) if saved else (None, None)
            self.files.stamp = stamp
            if text is not None and stamp != saved_stamp:
                log.info("%s changed on disk since it was last saved: merging", self.path)
                if await self.notebook_file.merge_file(text):
                    self.files.changed()

    def projection_options(self) -> dict[str, Any]:
        """How a YNotebook projection of this notebook is made (its outputs, its commits)."""
        options: dict[str, Any] = {"commit": self.table.commit}
        if self.hooks.render_output is not None:
            options["render_output"] = self.hooks.render_output
        if self.hooks.ingest_output is not None:
            options["ingest_output"] = self.hooks.ingest_output
        return options

    async def take_ynotebook(self) -> YNotebookProjection | None:
        """The YNotebook built while the notebook opened from the file (``open``), up to date
        with the table (it follows it once built); None if none was. Given out once."""
        building, self._ynotebook = self._ynotebook, None
        return None if building is None else await building

    def drop_ynotebook(self) -> None:
        """Let go of a YNotebook built while opening that nobody took."""
        building, self._ynotebook = self._ynotebook, None
        if building is None:
            return
        if not building.done():
            building.cancel()
        elif not building.cancelled() and building.exception() is None:
            building.result().close()

    # -- reading and writing ----------------------------------------------------------------

    def records(self) -> list[Record]:
        return self.db.get()

    async def durable_records(self, *, ordered: bool = False) -> tuple[list[Record], int]:
        """Every record as the change log has it durably, and that version; read a slice at a
        time, so a big notebook does not stall the event loop (``sync/slices.py``).
        ``ordered``: ``in_notebook_order``, for a reader (the table itself has no order; the
        saves and merges that read it need none)."""
        records, version = await read_in_slices(self.db, self.table.durable)
        return (in_notebook_order(records) if ordered else records), version

    @property
    def version(self) -> int:
        return self.table.version

    async def commit(self, origin: Origin) -> int:
        """Commit pending changes as one version of ``origin`` and wait until it is
        durable."""
        self.table.commit(origin)
        return await self.table.durable()

    async def apply(
        self,
        sets: Iterable[Mapping[str, Any]] = (),
        deletes: Iterable[Mapping[str, Any]] = (),
        *,
        origin: Origin,
    ) -> int:
        """Apply record changes as one commit of ``origin``; all are checked first, so a bad
        one changes nothing (``InvalidRecordError``). Returns the new (or unchanged)
        version."""
        sets, deletes = list(sets), list(deletes)
        self.table.check_writable()
        for record in sets:
            self.db.check(record)
        for where in deletes:
            self.db.key_of(where)
        with self.db.transaction(origin):
            for record in sets:
                self.db.set(record, origin)
            for where in deletes:
                self.db.delete(where, origin)
        return await self.commit(origin)

    # -- history ----------------------------------------------------------------------------

    async def history(self) -> list[Version]:
        await self.table.durable()
        return await self.changelog.versions(self.file_id)

    async def records_at(self, version: int, *, ordered: bool = False) -> list[Record]:
        """The records as of ``version`` (``ordered``: as ``durable_records``)."""
        await self.table.durable()
        state = await self.changelog.state_at(self.file_id, version)
        # replaying a whole notebook holds the GIL: done in the replay process
        records = await self.changelog.replay.run(records_of_state, state)
        return in_notebook_order(records) if ordered else records

    async def revert(self, version: int, origin: Origin) -> int:
        """Make the notebook what it was at ``version``, as a new version."""
        now = await self.table.durable()
        old = await self.changelog.state_at(self.file_id, version)
        # the state of now from the log too (encoding a big table here would hold the event
        # loop); comparing every record is CPU work: done in the replay process; only the
        # records that differ are written here
        current = await self.changelog.state_at(self.file_id, now)
        sets, deletes = await self.changelog.replay.run(revert_patch, current, old)
        changes = [(True, where) for where in deletes] + [(False, record) for record in sets]
        # a big revert is written a chunk at a time, each chunk one version: the loop serves
        # everyone else in between
        for start in range(0, max(len(changes), 1), REVERT_CHUNK):
            self.table.check_writable()
            with self.db.transaction(origin):
                for delete, record in changes[start : start + REVERT_CHUNK]:
                    if delete:
                        self.db.delete(record, origin)
                    else:
                        self.db.set(record, origin)
            self.table.commit(origin)
            await asyncio.sleep(0)
        return await self.table.durable()

    # -- the file ---------------------------------------------------------------------------

    async def export_notebook(self, records: list[Record] | None = None) -> dict[str, Any]:
        """The notebook as nbformat 4.5, from the live table as the change log has it (or from
        ``records``)."""
        if records is None:
            records, _ = await self.durable_records()
        outputs_of: OutputsOf = ordered_outputs
        if self.hooks.prepare_export is not None:
            outputs_of = await self.hooks.prepare_export(records)
        extra: dict[str, Any] = {}
        if self.metadata is not None:
            extra.update(await self.metadata.notebook_metadata(records))
        # building a big notebook (re-inlined images and overflow) is CPU work: not on the loop
        nb = await anyio.to_thread.run_sync(
            lambda: records_to_notebook(records, outputs_of=outputs_of)
        )
        nb["metadata"].update(extra)
        return nb

    def _on_update(self, update: bytes, origin: Origin) -> None:
        # what came from the file is in it: the import at open, and a merge (which asks for a
        # save itself when the live notebook still differs from the file). Scheduling one here
        # raced the open: an import not yet durable when the autosave came was saved, and
        # opening the notebook rewrote its file.
        if origin.kind not in (OriginKind.STORE, OriginKind.FILE):
            self.files.changed()

    async def on_raw(self, peer: Peer, message: Message) -> dict[str, Any] | None:
        """A room's save request (JupyterLab's Ctrl+S): the file is saved now."""
        if message.raw != "save":
            return None
        status = await self.files.save()
        if status == "skipped":  # the file is up to date; the stock frontend would show
            status = "success"  # "Saving already in progress" as an error for "skipped"
        return {"type": "save", "responseTo": message.raw_id, "status": status}

    def _write_status(self, error: BaseException | None) -> None:
        self.write_error = error

    def set_path(self, path: str) -> None:
        self.path = path

    def renamed(self, path: str) -> None:
        """The file was renamed through the server (``LiveDocument``)."""
        self.set_path(path)
        self.files.moved()

    def deleted_now(self) -> None:
        """The file was deleted through the server (``LiveDocument``)."""
        self.files.deleted_now()

    @property
    def keeps_open(self) -> bool:
        """Its unsaved changes wait for the store (``LiveDocument``)."""
        return self.write_error is not None

    async def close(self) -> None:
        """Save and stop observing (the change log keeps everything)."""
        if self.closed:
            return
        self.closed = True
        if self.write_error is not None:
            # (the server is stopping: the manager keeps failing documents open otherwise)
            log.error(
                "closing %s while its changes cannot be written (%s): the changes made since "
                "the store failed are lost",
                self.path,
                self.write_error,
            )
            await self.files.close(save=False)
        else:
            try:
                await asyncio.wait_for(self.files.close(save=True), CLOSE_TIMEOUT)
                await asyncio.wait_for(self.table.durable(), CLOSE_TIMEOUT)
            except TimeoutError:
                log.error("the final save of %s did not end within %g s", self.path, CLOSE_TIMEOUT)
            except StoreUnavailableError as e:  # failed meanwhile: said to every client
                log.error("the last changes of %s are not in the change log: %s", self.path, e)
            except Exception as e:  # a bug of ours: the document closes all the same
                count_error("document.final_save", e, f"the final save of {self.path}", logger=log)
        self._unsubscribe()
        self._unwatch()
        self.table.close()
        self.db.close()

    def settings(self) -> Record:
        return self.db.get_one({"type": SETTINGS_KEY[0], "id": SETTINGS_KEY[1]}) or {}


def _read_records(text: str, notary: Notary | None) -> tuple[LoadedNotebook, list[Record], str]:
    """The notebook, its records, and its signature ("": not computed, as no output's
    trust depends on it)."""
    loaded = load_notebook(text)
    records = notebook_to_records(loaded.notebook)
    if notary is None or not outputs_need_trust(records):
        return loaded, records, ""
    return loaded, records, signature_of(notary, loaded.notebook)
