"""Big bytes between this process and the replay worker, through files, a piece at a time.

A process pool pickles a call's arguments and its result whole, and sends them down a pipe:
pickling and unpickling a 20 MB update are single C calls that hold the GIL for tens of
milliseconds each, and they stall the event loop even though they run in the pool's own
threads. So bytes of ``SPILL_BYTES`` or more go through a file instead: written ``CHUNK``
bytes per system call and read back whole into the bytes object (the GIL is free during each
system call), only the file's name pickled.
So do the items of a list of bytes that are that big together (a document's log since its
last snapshot: an imported notebook is logged as many updates of less than 1 MB each), in one
file.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

#: bytes at least this long go through a file
SPILL_BYTES = 1 << 20
#: bytes per system call
CHUNK = 1 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class Spilled:
    """``size`` bytes written to the file ``path``."""

    path: str
    size: int


@dataclass(frozen=True)
class SpilledItems:
    """A list (or tuple: ``kind``) of bytes written one after another to the file ``path``,
    each ``sizes[i]`` long."""

    path: str
    sizes: tuple[int, ...]
    kind: type[list[Any]] | type[tuple[Any, ...]]


def spill(data: bytes, folder: str) -> Spilled:
    """``data`` written to a new file in ``folder``, a chunk per system call."""
    return Spilled(_write(folder, [data]), len(data))


def spill_items(items: list[bytes] | tuple[bytes, ...], folder: str) -> SpilledItems:
    """``items`` written one after another to a new file in ``folder``."""
    return SpilledItems(_write(folder, items), tuple(map(len, items)), type(items))


def _write(folder: str, pieces: Iterable[bytes]) -> str:
    fd, path = tempfile.mkstemp(prefix="cocalc-replay-", dir=folder)
    # unbuffered: each write is one system call, made without the GIL
    with open(fd, "wb", buffering=0) as file:
        for data in pieces:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += file.write(view[written : written + CHUNK]) or 0
    return path


def unspill(spilled: Spilled, *, remove: bool) -> bytes:
    """The bytes of ``spilled`` (``remove``: then its file is removed)."""
    return _read(spilled.path, spilled.size, remove=remove)


def unspill_items(spilled: SpilledItems, *, remove: bool) -> list[bytes] | tuple[bytes, ...]:
    """The items of ``spilled``, read back (``remove``: then its file is removed)."""
    view = memoryview(_read(spilled.path, sum(spilled.sizes), remove=remove))
    starts = itertools.accumulate(spilled.sizes, initial=0)  # (one more than the sizes)
    pieces = zip(starts, spilled.sizes, strict=False)
    return spilled.kind(bytes(view[start : start + size]) for start, size in pieces)


def _read(path: str, size: int, *, remove: bool) -> bytes:
    # unbuffered, the whole file: read into the bytes object itself without the GIL (read
    # into a buffer, 20 MB copied into bytes afterwards held the GIL for 10–100 ms)
    with open(path, "rb", buffering=0) as file:
        data = file.read()
    if len(data) != size:
        raise EOFError(f"{path}: {len(data)} of {size} bytes")
    if remove:
        os.unlink(path)
    return data


def _many_bytes(value: Any) -> bool:
    """Whether ``value`` is a list or tuple of bytes that are big together."""
    return (
        type(value) in (list, tuple)
        and all(isinstance(item, bytes) for item in value)
        and sum(map(len, value)) >= SPILL_BYTES
    )


def has_big(value: Any) -> bool:
    """Whether ``value`` (bytes, or lists and tuples of them) holds bytes to spill."""
    if isinstance(value, bytes):
        return len(value) >= SPILL_BYTES
    if type(value) in (list, tuple):
        return _many_bytes(value) or any(has_big(item) for item in value)
    return False


def has_spilled(value: Any) -> bool:
    """Whether ``value`` holds spilled bytes (at the top, or in lists and tuples)."""
    if isinstance(value, (Spilled, SpilledItems)):
        return True
    if type(value) in (list, tuple):
        return any(has_spilled(item) for item in value)
    return False


def spill_big(value: Any, folder: str) -> Any:
    """``value`` with its big bytes (at the top, or in lists and tuples) spilled to files."""
    if isinstance(value, bytes) and len(value) >= SPILL_BYTES:
        return spill(value, folder)
    if _many_bytes(value):
        return spill_items(value, folder)
    if type(value) in (list, tuple):
        return type(value)(spill_big(item, folder) for item in value)
    return value


def unspill_all(value: Any, *, remove: bool) -> Any:
    """``value`` with its spilled bytes read back."""
    if isinstance(value, Spilled):
        return unspill(value, remove=remove)
    if isinstance(value, SpilledItems):
        return unspill_items(value, remove=remove)
    if type(value) in (list, tuple):
        return type(value)(unspill_all(item, remove=remove) for item in value)
    return value


def spilled_files(value: Any) -> list[str]:
    """The files of the spilled bytes in ``value``."""
    if isinstance(value, (Spilled, SpilledItems)):
        return [value.path]
    if type(value) in (list, tuple):
        return [path for item in value for path in spilled_files(item)]
    return []


def call_spilled(fn: Callable[..., T], folder: str, args: tuple[Any, ...]) -> Any:
    """Runs in the worker: ``fn`` on ``args`` read back (their files are the caller's to
    remove), its result spilled to ``folder`` if it is big bytes (the caller removes it)."""
    return spill_big(fn(*unspill_all(args, remove=False)), folder)
