"""``save_model``: a notebook saved through jupyter_server's file contents manager with its
heavy steps (the copy, the signature's HMAC, the backup copy, the write) in a thread, with the
same effects as the manager's own ``save``: the bytes, the signature, the first checkpoint, the
hooks, the validation message, the event. ``hashed_model``: a file's hash, the manager's,
computed in a thread."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from nbformat.sign import NotebookNotary
from notebook_documents import notebook_document
from tornado.web import HTTPError

from jupyter_cocalc_sync.documents import contents_off_loop
from jupyter_cocalc_sync.documents.contents_off_loop import hashed_model, save_model
from jupyter_cocalc_sync.documents.following import FileAccess
from jupyter_cocalc_sync.documents.notebook import NotebookDocument
from jupyter_cocalc_sync.format.ipynb_text import PIECE
from jupyter_cocalc_sync.origin import Origin


def notebook(trusted: bool) -> dict[str, Any]:
    """A notebook model's content, its code cells trusted or not (as an export gives it)."""
    cells = [
        {
            "id": f"c{i}",
            "cell_type": "code",
            "source": f"print({i})",
            "metadata": {"trusted": trusted},
            "execution_count": i + 1,
            "outputs": [
                {"output_type": "stream", "name": "stdout", "text": f"{i}\n" * 50},
                {
                    "output_type": "display_data",
                    "data": {"text/html": f"<b>{i}</b>", "text/plain": str(i)},
                    "metadata": {},
                },
            ],
        }
        for i in range(20)
    ]
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def flood_notebook(lines: int, trusted: bool = True) -> dict[str, Any]:
    """A notebook whose one cell printed ``lines`` lines (with a few ``\\r\\n`` and other
    line ends among them) and showed a long one-line string (an image)."""
    text = "".join(
        f"{i}\r\n" if i % 997 == 0 else f"{i}\x0b" if i % 991 == 0 else f"{i}\n"
        for i in range(lines)
    )
    output = {"output_type": "stream", "name": "stdout", "text": text}
    image = {
        "output_type": "display_data",
        "data": {"image/png": "iVBORw0KGgo" * 20_000, "text/plain": "<Figure>"},
        "metadata": {},
    }
    cell = {
        "id": "flood",
        "cell_type": "code",
        "source": "for i in range(N):\n    print(i)",
        "metadata": {"trusted": trusted},
        "execution_count": 1,
        "outputs": [output, image],
    }
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}


class Recorded:
    """What a contents manager's hooks and events saw."""

    def __init__(self, manager: AsyncFileContentsManager) -> None:
        self.calls: list[tuple[str, Any]] = []
        manager.register_pre_save_hook(self.pre_save)
        manager.register_post_save_hook(self.post_save)
        self.manager = manager
        real_emit = type(manager).emit

        def emit(data: dict[str, Any]) -> None:
            self.calls.append(("event", {**data, "path": Path(data["path"]).stem}))
            real_emit(manager, data=data)

        manager.emit = emit  # type: ignore[method-assign]

    def close(self) -> None:
        del self.manager.emit
        self.manager._pre_save_hooks.remove(self.pre_save)
        self.manager._post_save_hooks.remove(self.post_save)

    def pre_save(self, model: dict[str, Any], path: str, contents_manager: Any) -> None:
        self.calls.append(("pre", (model["type"], Path(path).stem)))

    def post_save(self, model: dict[str, Any], os_path: str, contents_manager: Any) -> None:
        self.calls.append(("post", (model["type"], Path(os_path).stem)))


@pytest.mark.parametrize("manager_class", [AsyncFileContentsManager, AsyncLargeFileManager])
@pytest.mark.parametrize("trusted", [True, False])
@pytest.mark.parametrize("flood", [False, True])
async def test_a_notebook_is_saved_as_the_contents_manager_saves_it(
    tmp_path: Path, manager_class: type[AsyncFileContentsManager], trusted: bool, flood: bool
) -> None:
    manager = manager_class(root_dir=str(tmp_path))
    content = flood_notebook(100_000, trusted) if flood else notebook(trusted)
    results = {}
    for name, save in (("theirs", manager.save), ("ours", _ours(manager))):
        recorded = Recorded(manager)
        model = {"type": "notebook", "format": "json", "content": copy.deepcopy(content)}
        results[name] = (await save(model, f"{name}.ipynb"), recorded.calls)
        recorded.close()
    (theirs, their_calls), (ours, our_calls) = results["theirs"], results["ours"]
    assert (tmp_path / "ours.ipynb").read_bytes() == (tmp_path / "theirs.ipynb").read_bytes()
    assert _same_model(ours) == _same_model(theirs)
    assert [(kind, _stemless(seen)) for kind, seen in our_calls] == [
        (kind, _stemless(seen)) for kind, seen in their_calls
    ]
    # signed when (and only when) every code cell is trusted
    saved = nbformat.read(tmp_path / "ours.ipynb", as_version=4)
    assert manager.notary.check_signature(saved) is trusted
    # the first checkpoint, as the manager makes it
    assert len(await manager.list_checkpoints("ours.ipynb")) == 1


async def test_an_invalid_notebook_gets_the_managers_validation_message(tmp_path: Path) -> None:
    manager = AsyncFileContentsManager(root_dir=str(tmp_path))
    content = notebook(False)
    del content["cells"][0]["outputs"][0]["name"]  # a stream needs a name
    theirs = await manager.save(
        {"type": "notebook", "content": copy.deepcopy(content)}, "theirs.ipynb"
    )
    ours = await save_model(manager, {"type": "notebook", "content": content}, "ours.ipynb")
    assert "Notebook validation failed" in ours["message"]
    assert ours["message"] == theirs["message"]
    assert (tmp_path / "ours.ipynb").read_bytes() == (tmp_path / "theirs.ipynb").read_bytes()


async def test_the_heavy_steps_of_a_save_run_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # for a 20 MB notebook, copying and signing it and copying the old file aside held the
    # event loop for 30 ms (150 ms signed) in the contents manager's own save
    manager = AsyncFileContentsManager(root_dir=str(tmp_path))
    (tmp_path / "nb.ipynb").write_text("{}")  # an old file: atomic writing copies it aside
    threads: dict[str, set[int]] = {"from_dict": set(), "signature": set(), "write": set()}
    real_from_dict, real_signature = nbformat.from_dict, NotebookNotary.compute_signature
    real_writing = manager.atomic_writing

    def from_dict(value: Any) -> Any:
        threads["from_dict"].add(threading.get_ident())
        return real_from_dict(value)

    def compute_signature(notary: NotebookNotary, nb: Any) -> str:
        threads["signature"].add(threading.get_ident())
        return real_signature(notary, nb)

    @contextlib.contextmanager
    def atomic_writing(os_path: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        threads["write"].add(threading.get_ident())
        with real_writing(os_path, *args, **kwargs) as file:
            yield file

    monkeypatch.setattr(nbformat, "from_dict", from_dict)
    monkeypatch.setattr(NotebookNotary, "compute_signature", compute_signature)
    monkeypatch.setattr(manager, "atomic_writing", atomic_writing)
    model = {"type": "notebook", "format": "json", "content": notebook(True)}
    await FileAccess(manager, lambda: "nb.ipynb").write(model)  # how documents save
    assert all(threads.values()), threads  # each step ran
    loop_thread = threading.get_ident()
    assert not any(loop_thread in seen for seen in threads.values()), "a step ran on the loop"


async def test_a_floods_notebook_is_written_as_its_text_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nbformat.write builds the whole text, a list of every line and every line's JSON first
    # (a million printed lines: 150 MB held at once), and splits and encodes each output's
    # text in one C call that holds the GIL for all of it (the event loop waits 200 ms)
    manager = AsyncFileContentsManager(root_dir=str(tmp_path))
    content = flood_notebook(200_000)
    text_size = len(content["cells"][0]["outputs"][0]["text"])
    writes: list[int] = []
    real_writing = manager.atomic_writing

    @contextlib.contextmanager
    def atomic_writing(os_path: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with real_writing(os_path, *args, **kwargs) as file:
            real_write = file.write

            def write(text: str) -> int:
                writes.append(len(text))
                return int(real_write(text))

            file.write = write
            yield file

    monkeypatch.setattr(manager, "atomic_writing", atomic_writing)
    model = {"type": "notebook", "format": "json", "content": content}
    nbformat.validate(nbformat.from_dict(notebook(True)))  # (its first call builds a validator)
    tracemalloc.start()
    try:
        await save_model(manager, model, "nb.ipynb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # what is held at once: the model's copy, the signature's encoding of the text, pieces
    assert peak < 3 * text_size, f"{peak / 1e6:.1f} MB held for {text_size / 1e6:.1f} MB of text"
    assert sum(writes) == len((tmp_path / "nb.ipynb").read_text())
    assert max(writes) < 4 * PIECE, "the text was written at once"


async def test_another_contents_manager_saves_as_it_does(tmp_path: Path) -> None:
    saved: list[str] = []

    class Custom(AsyncFileContentsManager):
        async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
            saved.append(path)
            result: dict[str, Any] = await super().save(model, path)
            return result

    manager = Custom(root_dir=str(tmp_path))
    await save_model(manager, {"type": "notebook", "content": notebook(False)}, "nb.ipynb")
    await save_model(manager, {"type": "file", "format": "text", "content": "x"}, "a.txt")
    assert saved == ["nb.ipynb", "a.txt"]


def _ours(manager: AsyncFileContentsManager) -> Any:
    async def save(model: dict[str, Any], path: str) -> dict[str, Any]:
        return await save_model(manager, model, path)

    return save


def _same_model(model: dict[str, Any]) -> dict[str, Any]:
    """A saved model without what differs between two files saved one after the other."""
    ignored = {"name", "path", "last_modified", "created", "hash"}
    return {key: value for key, value in model.items() if key not in ignored}


def _stemless(seen: Any) -> Any:
    """A recorded call without the file's name."""
    if isinstance(seen, tuple):
        return seen[0]
    return {key: value for key, value in seen.items() if key != "path"}


@pytest.mark.parametrize("name", ["nb.ipynb", "a.txt"])
async def test_a_files_hash_is_the_managers_computed_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # the manager hashes the file's bytes on the event loop: 14 ms for 20 MB
    manager = AsyncFileContentsManager(root_dir=str(tmp_path))
    await manager.save({"type": "notebook", "content": notebook(False)}, "nb.ipynb")
    (tmp_path / "a.txt").write_text("some text\n" * 1000)
    theirs = await manager.get(name, content=False, require_hash=True)
    hashed_in: set[int] = set()
    real_new = hashlib.new

    def new(name: str, *args: Any, **kwargs: Any) -> Any:
        hashed_in.add(threading.get_ident())
        return real_new(name, *args, **kwargs)

    monkeypatch.setattr(hashlib, "new", new)
    hashed = await FileAccess(manager, lambda: name).hashed()  # how documents ask for it
    assert hashed is not None
    assert hashed[1] == theirs["hash"]
    assert hashed_in, "nothing was hashed"
    assert threading.get_ident() not in hashed_in
    monkeypatch.undo()
    assert await hashed_model(manager, name) == theirs
    (tmp_path / name).unlink()
    with pytest.raises(HTTPError) as gone:
        await hashed_model(manager, name)
    assert gone.value.status_code == 404


@contextlib.asynccontextmanager
async def live_notebook(tmp_path: Path) -> AsyncIterator[NotebookDocument]:
    """A live document of ``nb.ipynb`` (``notebook(False)``), its cell ``c1`` edited live and
    not saved yet; its file is not polled (a test looks at it when it wants)."""
    text = json.dumps(notebook(False))
    async with notebook_document(tmp_path, text, name="nb.ipynb") as document:
        await document.open()
        await document.apply(
            [{"type": "cell", "id": "c1", "input": "edited live"}], origin=Origin.of_user("me")
        )
        yield document


def another_program_edits_c2(path: Path) -> None:
    """What another program does to ``path``: a new file with cell ``c2`` edited, renamed over
    it (as git and most editors write)."""
    on_disk = json.loads(path.read_text())
    on_disk["cells"][2]["source"] = "edited on disk"
    replacement = path.with_name("other-program.tmp")
    replacement.write_text(json.dumps(on_disk))
    os.replace(replacement, path)


class AnotherProgram:
    """``another_program_edits_c2`` the first time it is called (a step of a save patched to
    call it: the other program writes at that moment, once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.edited = False

    def __call__(self) -> None:
        if not self.edited:
            self.edited = True
            another_program_edits_c2(self.path)


def assert_both_edits_kept(document: NotebookDocument, path: Path) -> None:
    inputs = {r["id"]: r.get("input") for r in document.records() if r["type"] == "cell"}
    assert (inputs["c1"], inputs["c2"]) == ("edited live", "edited on disk")
    saved = nbformat.read(path, as_version=4)
    assert [c.source for c in saved.cells[1:3]] == ["edited live", "edited on disk"]


async def test_a_change_on_disk_while_a_save_is_prepared_is_merged_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the file is opened for writing only after the steps in a thread: a program that writes
    # it meanwhile must not lose its change to the save
    path = tmp_path / "nb.ipynb"
    async with live_notebook(tmp_path) as document:
        real_from_dict = nbformat.from_dict
        other = AnotherProgram(path)

        def from_dict(value: Any) -> Any:
            other()  # the first save's preparation: another program writes the file
            return real_from_dict(value)

        monkeypatch.setattr(nbformat, "from_dict", from_dict)
        assert await document.files.save() == "success"
        assert other.edited
        assert_both_edits_kept(document, path)


async def test_a_file_replaced_while_its_save_writes_it_is_merged_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the manager writes the file in place: another program's file renamed over it meanwhile
    # is what is on disk after the save, and is merged and saved again, not taken for the save
    path = tmp_path / "nb.ipynb"
    async with live_notebook(tmp_path) as document:
        real_write = contents_off_loop.write_notebook_file
        other = AnotherProgram(path)

        def write_notebook_file(nb: Any, file: Any, validation_error: dict[str, Any]) -> None:
            real_write(nb, file, validation_error)
            other()

        monkeypatch.setattr(contents_off_loop, "write_notebook_file", write_notebook_file)
        assert await document.files.save() == "success"
        assert other.edited
        assert_both_edits_kept(document, path)


async def test_a_change_right_after_a_save_is_not_taken_for_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the manager is asked for the saved file's model after the write: a file another program
    # wrote in between must still look changed to the next check, which merges it
    path = tmp_path / "nb.ipynb"
    async with live_notebook(tmp_path) as document:
        checkpoints = document.files.file.contents_manager.checkpoints  # type: ignore[attr-defined]
        real_list = checkpoints.list_checkpoints
        other = AnotherProgram(path)

        async def list_checkpoints(checked_path: str) -> Any:
            other()  # right after the save's write
            return await real_list(checked_path)

        monkeypatch.setattr(checkpoints, "list_checkpoints", list_checkpoints)
        assert await document.files.save() == "success"
        assert other.edited
        assert await document.files.check()  # merged, to be saved back
        assert await document.files.save() == "success"
        assert_both_edits_kept(document, path)


async def test_a_file_replaced_right_after_its_save_is_checked_is_not_taken_for_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # another program puts its file in place right after the save checked that the file is the
    # one it wrote: the save's stamp is the one it wrote (taken before the check), so the next
    # poll sees theirs as a change, not as the saved file
    path = tmp_path / "nb.ipynb"
    async with live_notebook(tmp_path) as document:
        real_write, real_stat = contents_off_loop.write_notebook_file, os.stat
        other = AnotherProgram(path)
        written: list[bool] = []

        def write_notebook_file(nb: Any, file: Any, validation_error: dict[str, Any]) -> None:
            real_write(nb, file, validation_error)
            written.append(True)

        def stat(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            result = real_stat(target, *args, **kwargs)
            if written and str(target) == str(path):
                other()  # right after the check of the written file
            return result

        monkeypatch.setattr(contents_off_loop, "write_notebook_file", write_notebook_file)
        monkeypatch.setattr(os, "stat", stat)
        assert await document.files.save() == "success"
        monkeypatch.undo()
        assert other.edited
        assert await document.files.check()  # theirs: merged, to be saved back
        assert await document.files.save() == "success"
        assert_both_edits_kept(document, path)


async def test_a_notebook_saved_through_a_link_is_written_where_the_link_points(
    tmp_path: Path,
) -> None:
    # the manager writes a link's target in place: that file is the one written, not one put
    # in its place by another program
    (tmp_path / "target.ipynb").write_text(json.dumps(notebook(False)))
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "target.ipynb")
    manager = AsyncFileContentsManager(root_dir=str(tmp_path))
    content = notebook(False)
    content["cells"][0]["source"] = "saved through the link"
    saved = await save_model(manager, {"type": "notebook", "content": content}, "link.ipynb")
    assert (tmp_path / "link.ipynb").is_symlink()
    target = nbformat.read(tmp_path / "target.ipynb", as_version=4)
    assert target.cells[0].source == "saved through the link"
    now = await manager.get("link.ipynb", content=False)
    assert (saved["last_modified"], saved["size"]) == (now["last_modified"], now["size"])


@pytest.mark.parametrize("manager_class", [AsyncFileContentsManager, AsyncLargeFileManager])
async def test_a_files_hash_is_of_the_file_its_stamp_is_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manager_class: type
) -> None:
    # the file is looked at, then read for its hash: a file renamed over it in between must not
    # get the new file's hash with the old file's stamp (a follower that wrote the old file
    # would take the new one for its own)
    manager = manager_class(root_dir=str(tmp_path))
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook(False)))
    real_get = manager.get
    other = AnotherProgram(path)

    async def get(*args: Any, **kwargs: Any) -> Any:
        model = await real_get(*args, **kwargs)
        other()  # right after the first look
        return model

    monkeypatch.setattr(manager, "get", get)
    hashed = await FileAccess(manager, lambda: "nb.ipynb").hashed()
    assert other.edited
    now = await real_get("nb.ipynb", content=False, require_hash=True)
    assert hashed == ((now["last_modified"].isoformat(), now["size"]), now["hash"])
