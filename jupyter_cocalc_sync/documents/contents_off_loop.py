"""Saving a notebook, and hashing a file, through jupyter_server's file contents managers
without holding the event loop for the size of the file.

``AsyncFileContentsManager.save`` copies the notebook (``nbformat.from_dict``), checks its trust
and signs it (an HMAC of every output), and copies the old file aside (atomic writing) in one
turn of the event loop before it writes in a thread: for a 20 MB notebook that is 30 ms, and
120 ms more when the notebook is trusted. Its ``get(..., require_hash=True)`` hashes the file's
bytes on the event loop (14 ms for 20 MB). For jupyter_server's own file managers, the same
steps run here in the same order with the same effects (hooks, signature, the file's bytes, the
first checkpoint, the validation message, the event; the hash), those that take time in a
thread: the copy, the signature's HMAC, the backup copy, the write, the hash. Storing the
signature stays on the event loop (the signature store is a SQLite connection of that thread).
Any other contents manager (a subclass too: it may change any step) does as it always does.

The manager opens the file for writing in the turn that begins the save; here the file is
opened after the steps in a thread. A file that another program changes meanwhile is not
overwritten: the save raises ``ChangedDuringSave`` (the caller merges the change and saves
again), so a change on disk is never lost to the longer preparation. Nor to the write itself
(the manager writes in place: a file another program puts in its place meanwhile keeps theirs,
and the save raises the same), nor to a change right after it: the saved model's stamp is the
one this save wrote, whatever is on disk when the manager is asked for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
from typing import Any

import nbformat
from jupyter_server._tz import utcfromtimestamp
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.utils import ensure_async
from tornado.web import HTTPError
from traitlets.log import get_logger

from ..format.ipynb_text import TextFile, write_nbformat4_to

log = logging.getLogger(__name__)

#: contents managers whose steps this module does
_FILE_MANAGERS = (AsyncFileContentsManager, AsyncLargeFileManager)

ContentsModel = dict[str, Any]


class ChangedDuringSave(HTTPError):
    """Another program changed the file while its save was prepared: nothing was written."""

    def __init__(self, path: str) -> None:
        super().__init__(409, f"{path} changed on disk while it was being saved")


async def save_model(contents_manager: Any, model: ContentsModel, path: str) -> ContentsModel:
    """``contents_manager.save(model, path)``, a notebook of jupyter_server's file managers
    with its heavy steps off the event loop (module docstring)."""
    if (
        type(contents_manager) in _FILE_MANAGERS
        and model.get("type") == "notebook"
        and model.get("chunk") is None
    ):
        return await save_off_loop(contents_manager, model, path)
    saved: ContentsModel = await ensure_async(contents_manager.save(model, path))
    return saved


async def save_off_loop(
    manager: AsyncFileContentsManager, model: ContentsModel, path: str
) -> ContentsModel:
    """What ``AsyncFileContentsManager.save`` does for a notebook model, its heavy steps in a
    thread."""
    path = path.strip("/")
    manager.run_pre_save_hooks(model=model, path=path)
    if "content" not in model:
        raise HTTPError(400, "No file content provided")
    os_path = manager._get_os_path(path)
    manager.log.debug("Saving %s", os_path)
    before = _file_stamp(os_path)
    notary = manager.notary
    validation_error: dict[str, Any] = {}
    try:
        # the first use of the secret reads (or creates) its file: here, not in two threads
        notary.secret  # noqa: B018

        def prepare() -> tuple[Any, bool, str | None]:
            nb = nbformat.from_dict(model["content"])
            trusted = notary.check_cells(nb)
            signed = trusted and nb.nbformat >= 3  # (what ``NotebookNotary.sign`` signs)
            return nb, trusted, notary.compute_signature(nb) if signed else None

        nb, trusted, signature = await asyncio.to_thread(prepare)
        _store_signature(manager, nb, path, trusted, signature)

        def write() -> os.stat_result:
            if _file_stamp(os_path) != before:
                raise ChangedDuringSave(path)
            with manager.atomic_writing(os_path, encoding="utf-8") as file:
                write_notebook_file(nb, file, validation_error)
                inode = os.fstat(file.fileno()).st_ino
            # (closed: its last bytes and time are on it now) its stamp as the manager gives
            # it (a link's own), taken before the check: a file put in its place after the
            # check is a change the next poll sees, one put before it is caught here
            stamp = os.lstat(os_path)
            if os.stat(os_path).st_ino != inode:
                # another program replaced the file while this one was written (the manager
                # writes in place): ours went to the replaced file, theirs is on disk
                raise ChangedDuringSave(path)
            return stamp

        written = await asyncio.to_thread(write)
        # one checkpoint should always exist for notebooks (as the manager's save does)
        if not await manager.checkpoints.list_checkpoints(path):
            await manager.create_checkpoint(path)
    except HTTPError:
        raise
    # what the manager's save turns any error into
    except Exception as e:
        manager.log.error("Error while saving file: %s %s", path, e, exc_info=True)
        raise HTTPError(500, f"Unexpected error while saving file: {path} {e}") from e
    manager.validate_notebook_model(model, validation_error=validation_error)
    message = model.get("message")
    saved: ContentsModel = await manager.get(path, content=False)
    ours = (utcfromtimestamp(written.st_mtime), written.st_size)
    if (saved["last_modified"], saved["size"]) != ours:
        # changed on disk since this save wrote it: the stamp is the one this save wrote, so
        # the next look at the file sees the change (and merges it) instead of taking it for
        # this save
        saved["last_modified"], saved["size"] = ours
    if message:
        saved["message"] = message
    manager.run_post_save_hooks(model=saved, os_path=os_path)
    manager.emit(data={"action": "save", "path": path})
    return saved


def write_notebook_file(nb: Any, file: TextFile, validation_error: dict[str, Any]) -> None:
    """``nbformat.write(nb, file, version=nbformat.NO_CONVERT,
    capture_validation_error=validation_error)``, the same bytes; an nbformat-4 notebook is
    written as its text is made (``write_nbformat4_to``): nbformat holds the whole text, and
    a list of every line of each output, at once (a million printed lines: 150 MB), and splits
    and encodes each text in one C call that holds the GIL throughout (200 ms)."""
    if nb.get("nbformat") != 4:
        nbformat.write(
            nb, file, version=nbformat.NO_CONVERT, capture_validation_error=validation_error
        )
        return
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as e:  # logged and reported, and written all the same
        get_logger().error("Notebook JSON is invalid: %s", e)
        validation_error["ValidationError"] = e
    write_nbformat4_to(nb, file)
    file.write("\n")  # (the JSON ends with "}": nbformat.write adds the newline)


def _file_stamp(os_path: str) -> tuple[int, int, int] | None:
    """What tells the file from another one written over it (None: no file)."""
    try:
        stat = os.stat(os_path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _store_signature(
    manager: AsyncFileContentsManager, nb: Any, path: str, trusted: bool, signature: str | None
) -> None:
    """The rest of ``check_and_sign``, on the event loop: the signature stored, or the
    warning; a store that fails is left to the manager's own ``check_and_sign`` (which
    recreates a corrupted store and signs again)."""
    if not trusted:
        manager.log.warning("Notebook %s is not trusted", path)
        return
    if signature is None:
        return
    notary = manager.notary
    try:
        notary.store.store_signature(signature, notary.algorithm)
    # the default store is SQLite: a locked or corrupted database is handled by the manager's
    # own path (which recreates a corrupted store); anything else is a bug and is raised
    except sqlite3.Error:
        log.warning(
            "storing the signature of %s failed: signing as the contents manager does", path
        )
        manager.check_and_sign(nb, path)


#: looks at a file for a hash of the file its stamp is of, before giving up while it changes
_HASH_LOOKS = 3


async def hashed_model(contents_manager: Any, path: str) -> ContentsModel:
    """``contents_manager.get(path, content=False, require_hash=True)``, the hash of a file of
    jupyter_server's file managers computed in a thread (module docstring).

    The hash is of the file the model's stamp (last modified, size) is of: the manager looks at
    the file, then reads it, and a file replaced in between would get the new file's hash with
    the old file's stamp (a follower would then take the new file for the one it wrote). A
    file that is still changing after a few looks gets no hash (as from a manager without
    hashes: its stamp is all there is to compare).
    """
    for _ in range(_HASH_LOOKS):
        model = await _hashed_model(contents_manager, path)
        if model["type"] == "directory" or model.get("hash") is None:
            return model
        again: ContentsModel = await ensure_async(contents_manager.get(path, content=False))
        if (again["last_modified"], again["size"]) == (model["last_modified"], model["size"]):
            return model
    model["hash"] = model["hash_algorithm"] = None
    return model


async def _hashed_model(contents_manager: Any, path: str) -> ContentsModel:
    if type(contents_manager) not in _FILE_MANAGERS:
        got = contents_manager.get(path, content=False, require_hash=True)
        hashed: ContentsModel = await ensure_async(got)
        return hashed
    model: ContentsModel = await contents_manager.get(path, content=False)
    if model["type"] == "directory":
        return model  # (the manager hashes files only)
    os_path = contents_manager._get_os_path(path)
    algorithm = contents_manager.hash_algorithm

    def digest() -> str:
        # read and hashed a piece at a time, the GIL free while each piece is hashed
        with contents_manager.perm_to_403(os_path), open(os_path, "rb") as file:
            return hashlib.file_digest(file, algorithm).hexdigest()

    try:
        model.update(hash=await asyncio.to_thread(digest), hash_algorithm=algorithm)
    except FileNotFoundError:  # deleted since ``get``: what the manager says of no file
        raise HTTPError(404, f"No such file or directory: {path}") from None
    return model


def off_loop_hash_algorithm(contents_manager: Any) -> str | None:
    """The algorithm of the hash a file of jupyter_server's file managers gets (of its bytes,
    computed here in a thread: ``text_hash``); None for any other contents manager."""
    if type(contents_manager) not in _FILE_MANAGERS:
        return None
    return str(contents_manager.hash_algorithm)


def text_hash(algorithm: str, model: ContentsModel) -> dict[str, str]:
    """The ``hash`` and ``hash_algorithm`` of a text model's file, as jupyter_server's file
    managers give them: of the UTF-8 bytes the text was strictly decoded from."""
    digest = hashlib.new(algorithm, model["content"].encode("utf-8"))
    return {"hash": digest.hexdigest(), "hash_algorithm": algorithm}
