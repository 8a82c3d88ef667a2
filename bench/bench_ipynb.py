"""ipynb import and export of a large notebook, in process (no server).

A generated notebook of 1000 code cells with ~20 MB of outputs (a third each: 15 KB of stream
text, 15 KB of ``text/html``, a ~30 KB base64 ``image/png``) goes from ipynb text to an
in-memory document and back to ipynb text, three ways:

* **nbformat** (the floor, no CRDT): ``nbformat.reads`` → ``nbformat.writes``;
* **stock** (what jupyter-collaboration does): ``nbformat.reads`` → ``YNotebook.set`` in a
  ``Doc(client_id=0)`` → its update applied to the room's doc; export ``YNotebook.get`` →
  ``nbformat.writes``;
* **ours** (what the server does when it opens a file): ``parse_notebook`` →
  ``notebook_to_records`` → ``initial_update`` → loaded into a ``notebook_syncdb()``
  (``SyncDB.load``); export ``records_to_notebook(db.get())`` → ``write_notebook``.

Medians of ``RUNS`` runs, each phase timed on its own (``gc.collect()`` before each run). The
stock path uses ``jupyter_ydoc`` of the main environment (the same version as the stock venv's).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nbformat
from jupyter_ydoc import YNotebook
from notebooks import mixed_notebook
from pycrdt import Doc
from report import Row, main, median, ms, row

from jupyter_cocalc_sync.format.ipynb import (
    initial_update,
    notebook_to_records,
    parse_notebook,
    records_to_notebook,
    write_notebook,
)
from jupyter_cocalc_sync.format.schema import notebook_syncdb
from jupyter_cocalc_sync.origin import FILE

#: ``python bench/run.py import`` selects this module too
ALIASES = ("import", "export")

CELLS = 1000
TEXT_BYTES = 15_000  # a stream or HTML output
PNG_BYTES = 30_000  # base64 characters of an image: ~20 MB of outputs in all
RUNS = 7


def generate() -> str:
    """The benchmark notebook as ipynb text."""
    return mixed_notebook(CELLS, TEXT_BYTES, PNG_BYTES)


@dataclass
class Route:
    """One way from ipynb text to a document (``load``) and back (``dump``)."""

    name: str
    load: Callable[[str], Any]
    dump: Callable[[Any], str]


def _nbformat_load(text: str) -> Any:
    return nbformat.reads(text, as_version=4)


def _nbformat_dump(nb: Any) -> str:
    return nbformat.writes(nb)


def _stock_load(text: str) -> YNotebook:
    content = nbformat.reads(text, as_version=4)
    source = YNotebook(Doc(client_id=0))
    source.set(content)
    room = YNotebook(Doc())
    room.ydoc.apply_update(source.ydoc.get_update())
    return room


def _stock_dump(ynb: YNotebook) -> str:
    return nbformat.writes(nbformat.from_dict(ynb.get()))


def _ours_load(text: str) -> Any:
    records = notebook_to_records(parse_notebook(text))
    db = notebook_syncdb()
    # as the server imports a file (``NotebookDocument.open``): the update that creates the
    # records, loaded into the empty table with the records it creates
    db.load(initial_update(records), records, FILE)
    return db


def _ours_dump(db: Any) -> str:
    return write_notebook(records_to_notebook(db.get()))


PATHS = (
    Route("nbformat", _nbformat_load, _nbformat_dump),
    Route("stock", _stock_load, _stock_dump),
    Route("ours", _ours_load, _ours_dump),
)


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _check(name: str, text: str, out: str) -> None:
    """The round trip must keep every cell and output (correctness, not timing)."""
    before, after = nbformat.reads(text, as_version=4), nbformat.reads(out, as_version=4)
    if [c.outputs for c in before.cells] != [c.outputs for c in after.cells]:
        raise AssertionError(f"{name}: the round trip changed the outputs")


def measure(text: str, runs: int = RUNS) -> dict[str, dict[str, list[float]]]:
    """Seconds per phase (``import``, ``export``) per path, ``runs`` times, interleaved."""
    times: dict[str, dict[str, list[float]]] = {p.name: {"import": [], "export": []} for p in PATHS}
    for run in range(runs):
        for path in PATHS:
            gc.collect()
            load_s, document = _time(lambda p=path: p.load(text))
            dump_s, out = _time(lambda p=path, d=document: p.dump(d))
            if run == 0:
                _check(path.name, text, out)
            times[path.name]["import"].append(load_s)
            times[path.name]["export"].append(dump_s)
            del document, out
    return times


def run() -> list[Row]:
    text = generate()
    size_mb = len(text.encode()) / 1e6
    times = measure(text)

    def med(path: str, phase: str | None = None) -> float:
        if phase is None:
            pairs = zip(times[path]["import"], times[path]["export"], strict=True)
            return ms(median([a + b for a, b in pairs]))
        return ms(median(times[path][phase]))

    what = f"{CELLS} cells, {size_mb:.1f} MB ipynb, median of {RUNS}"
    return [
        row(
            "ipynb import (text → document)",
            med("stock", "import"),
            med("ours", "import"),
            "ms",
            f"{what}; stock = nbformat.reads + YNotebook.set; "
            f"plain nbformat.reads {med('nbformat', 'import'):.0f} ms",
        ),
        row(
            "ipynb export (document → text)",
            med("stock", "export"),
            med("ours", "export"),
            "ms",
            f"{what}; stock = YNotebook.get + nbformat.writes; "
            f"plain nbformat.writes {med('nbformat', 'export'):.0f} ms",
        ),
        row(
            "ipynb import + export",
            med("stock"),
            med("ours"),
            "ms",
            f"{what}; target: ours no slower than YNotebook (ratio ≥ 1)",
        ),
        row(
            "ipynb import + export vs plain nbformat",
            med("nbformat"),
            med("ours"),
            "ms",
            "stock column = plain nbformat.reads + writes (no CRDT): the floor",
        ),
    ]


if __name__ == "__main__":
    main(run)
