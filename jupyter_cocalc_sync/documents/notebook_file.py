"""``NotebookFile``: what following its ``.ipynb`` file means for a notebook (``FileFormat``).

* The live notebook as a file is the table exported to nbformat, with the version it shows.
  Outputs that arrive with no client connected are saved like any other change.
* A file that changed out of band is compared with what this server wrote: same hash
  (``touch``, a checkout of the same content) or the same notebook once parsed (another tool
  reordered the JSON keys) changes nothing; anything else is merged into the live table as a
  three-way record merge against the saved version (``format/merge.py``).
* Outputs coming in from the file go through the ``OutputImporter`` (the limits, blob
  extraction and overflow of kernel outputs), at import and at merges alike.
* A file that cannot be parsed is not merged (and is replaced by the next save).
* What brings a deleted file back is an edit of inputs, cells or metadata: outputs of a cell
  still running do not count. Its history stays either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from jupyter_server.utils import ensure_async
from tornado.web import HTTPError

from ..errors import DocumentNotFoundError, NotebookFormatError
from ..format.ipynb import notebook_to_records
from ..format.merge import SavedDigests, digest, disk_outputs, merge_notebook, saved_digests
from ..format.repair import LoadedNotebook, load_notebook, parse_notebook
from ..format.schema import SETTINGS_KEY
from ..format.trust import carry_trust, without_trust
from ..origin import FILE
from ..sync.slices import LoopTurns
from ..sync.table import Record
from .following import FileAccess, Snapshot, Stamp, stamp_of

if TYPE_CHECKING:
    from .notebook import NotebookDocument

log = logging.getLogger(__name__)

# what the runner writes: not an edit that brings a deleted file back
_RUNTIME_FIELDS = frozenset({"output", "exec_count", "state", "start", "end"})


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


class NotebookFile:
    """A notebook document's ``FileFormat``; its snapshots carry the version they show."""

    def __init__(
        self,
        document: NotebookDocument,
        file: FileAccess,
        *,
        outputs: OutputImporter | None = None,
    ) -> None:
        self.document = document
        self.file = file
        self.outputs = outputs
        #: the version of the table the file holds (as this server last wrote or merged it)
        self.saved_version = 0
        self.hash: str | None = None  # of the file last saved, as the contents API reports it
        #: digests of the notebook as this server last wrote it (None: not computed yet)
        self.saved_notebook: SavedDigests | None = None
        #: the stamp and hash of the file as ``read`` last read it, until ``hash_after_read``
        self._read_hash: tuple[Stamp, str | None] | None = None
        self.on_saved: list[Callable[[], Any]] = []

    @property
    def path(self) -> str:
        return self.file.path

    # -- reading ----------------------------------------------------------------------------

    async def read(self) -> tuple[str, Stamp]:
        """The file's text and stamp; ``DocumentNotFoundError`` if there is no file. The hash
        of that text is kept for ``file_hash`` (a big file read and hashed once, not twice)."""
        try:
            model = await self.file.read("text", with_hash=True)
        except HTTPError as e:
            if e.status_code == 400:
                raise NotebookFormatError(f"{self.path!r}: {e.log_message}") from None
            raise
        if model is None:
            raise DocumentNotFoundError(f"no notebook at {self.path!r}")
        stamp = stamp_of(model)
        self._read_hash = (stamp, model.get("hash"))
        return model["content"], stamp

    async def restore_interrupted_save(self) -> bool:
        """Whether the contents manager may have put back the file a save cut off by a crash
        broke (then read it again).

        jupyter_server's atomic writing copies the file to ``.~<name>`` before writing it in
        place, and its own notebook read of a file that does not parse moves the broken file
        aside as ``<name>.invalid`` and puts that copy back: this is that read. False when it
        refuses the file too (no copy, or another contents manager).
        """
        get = self.file.contents_manager.get
        try:
            await ensure_async(get(self.path, type="notebook", content=True))
        except HTTPError as e:
            if e.status_code == 400:
                return False
            raise
        log.warning(
            "%s did not parse; reading it again after the contents manager's own read", self.path
        )
        return True

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
        turn = LoopTurns()
        for record in records:
            if record["type"] == "cell" and "output" in record:
                record["output"] = await self.import_outputs(
                    record["id"], disk_outputs(record), settings
                )
                # a cell's outputs take little time, a thousand cells' a lot: other tasks
                # run in between
                await turn.maybe()
        return records

    # -- FileFormat -------------------------------------------------------------------------

    async def unsaved(self) -> bool:
        return await self.document.table.durable() != self.saved_version

    async def snapshot(self) -> Snapshot[int]:
        # the durable table of one instant, read a slice at a time (a big notebook at once
        # would stall the event loop)
        records, version = await self.document.durable_records()
        content = await self.document.export_notebook(records)
        return Snapshot({"type": "notebook", "format": "json", "content": content}, version)

    async def saved(self, snapshot: Snapshot[int], stamp: Stamp) -> None:
        self.saved_version = snapshot.state
        # first what a restart needs to tell the file's own changes from this save
        await self.document.changelog.mark_saved(self.document.file_id, snapshot.state, *stamp)
        self.hash = await self.file_hash(stamp)
        content = snapshot.model["content"]
        self.saved_notebook = await anyio.to_thread.run_sync(
            lambda: saved_digests(parse_notebook(content))
        )
        for callback in self.on_saved:
            callback()

    def edits(self) -> str:
        return edits_digest(self.document.records())

    async def edits_at_save(self) -> str:
        saved = await self.document.records_at(self.saved_version)
        return await anyio.to_thread.run_sync(edits_digest, saved)

    async def merge(self, on_disk: Stamp) -> tuple[Stamp, bool]:
        hashed = await self.file.hashed()
        if hashed is not None and hashed[1] is not None and hashed[1] == self.hash:
            return hashed[0], False  # touched, or the same content written again
        try:
            text, stamp = await self.read()
            merged = await self.merge_file(text)
        except NotebookFormatError as e:
            # a broken file: nothing to merge; the next save replaces it with the live notebook
            log.warning("%s changed on disk but cannot be read: %s", self.path, e)
            return on_disk, False
        if not merged:  # the same notebook: its hash now stands for what was saved
            self.hash = hashed[1] if hashed is not None and hashed[0] == stamp else None
        return stamp, merged

    # -- the file's hash and the three-way merge --------------------------------------------

    async def file_hash(self, stamp: Stamp) -> str | None:
        """The file's hash, if the file is still the one this server knows (``stamp``).

        JupyterLab compares it with the file's before saving ("File Changed" if stale); a
        touch leaves it unchanged, which tells a touch from a change.
        """
        hashed = await self.file.hashed()
        return hashed[1] if hashed is not None and hashed[0] == stamp else None

    async def hash_after_read(self, stamp: Stamp) -> str | None:
        """``file_hash`` right after ``read``: the hash that read gave, when it read the file
        of ``stamp`` (opening a big notebook reads and hashes it once, not twice)."""
        read, self._read_hash = self._read_hash, None
        if read is not None and read[0] == stamp and read[1] is not None:
            return read[1]
        return await self.file_hash(stamp)

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
        if self.saved_notebook is None:
            records = await self.document.records_at(self.saved_version)
            content = await self.document.export_notebook(records)
            self.saved_notebook = await anyio.to_thread.run_sync(
                lambda: saved_digests(parse_notebook(content))
            )
        return self.saved_notebook
