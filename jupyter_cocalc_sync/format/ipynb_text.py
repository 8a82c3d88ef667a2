"""Writing ipynb text: what ``nbformat.writes`` writes, byte for byte, in a fraction of its time.

``nbformat.writes`` copies the notebook three times (``from_dict``, ``split_lines``,
``strip_transient``), validates it, then calls ``json.dumps(nb, indent=1, sort_keys=True,
...)``; with an ``indent`` the standard library encodes in pure Python, one generator step per
value, and a notebook's outputs are mostly lists of lines: most of the time goes there.

Here the notebook is not copied (``_file_view`` makes new containers only where the file's
form differs from the table's: lines, transient metadata), and ``indented_json`` writes the
same text as that ``json.dumps``, encoding every list of strings (the lines) in one C call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from json.encoder import encode_basestring
from typing import Any

#: MIME types whose strings nbformat writes as lists of lines, besides ``text/*``
_SPLIT_MIMES = frozenset({"application/javascript", "image/svg+xml"})
#: notebook metadata nbformat never writes to a file (and cells' ``trusted``)
_TRANSIENT_METADATA = frozenset({"orig_nbformat", "orig_nbformat_minor", "signature"})

#: a string as JSON, without escaping non-ASCII (``ensure_ascii=False``): the C encoder
_encode_str: Callable[[str], str] = encode_basestring


def write_nbformat4(nb: Mapping[str, Any]) -> str:
    """The ipynb text of the nbformat-4 notebook ``nb`` (joined strings), as ``nbformat.writes``
    writes it; ``nb`` is not changed."""
    return indented_json(_file_view(nb))


def indented_json(value: Any) -> str:
    """``json.dumps(value, indent=1, sort_keys=True, separators=(",", ": "),
    ensure_ascii=False)`` for JSON values (dicts with string keys, lists and tuples, strings,
    numbers, booleans, None), the same text."""
    out: list[str] = []
    _write(value, out, "\n")
    return "".join(out)


def _write(value: Any, out: list[str], newline: str) -> None:
    """Append ``value``'s JSON to ``out``; ``newline``: a newline and the indentation of the
    line ``value`` starts on (its items are indented one more)."""
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + " "
        opening = "{" + inner
        for key in sorted(value):
            out.append(opening)
            opening = "," + inner
            out.append(_key(key))
            out.append(": ")
            _write(value[key], out, inner)
        out.append(newline + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + " "
        try:
            # a list of strings (lines of text, the bulk of a notebook): one C call
            out.append("[" + inner + ("," + inner).join(map(_encode_str, value)) + newline + "]")
            return
        except TypeError:  # not only strings: item by item
            pass
        opening = "[" + inner
        for item in value:
            out.append(opening)
            opening = "," + inner
            _write(item, out, inner)
        out.append(newline + "]")
    else:
        out.append(_scalar(value))


def _scalar(value: Any) -> str:
    # (json's order: booleans are ints, so they are looked at first)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == -float("inf"):
        return "-Infinity"
    return float.__repr__(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _encode_str(key)
    if isinstance(key, (int, float)) or key is None:  # (json's keys: their JSON, as a string)
        return _encode_str(_scalar(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


# -- the notebook as the file holds it --------------------------------------------------------


def _file_view(nb: Mapping[str, Any]) -> dict[str, Any]:
    """``nb`` with multi-line strings as lists of lines and without transient metadata, sharing
    every container it does not change with ``nb``."""
    view = dict(nb)
    metadata = nb.get("metadata")
    if isinstance(metadata, dict) and not _TRANSIENT_METADATA.isdisjoint(metadata):
        view["metadata"] = {k: v for k, v in metadata.items() if k not in _TRANSIENT_METADATA}
    view["cells"] = [_cell_view(cell) for cell in nb["cells"]]
    return view


def _cell_view(cell: Mapping[str, Any]) -> dict[str, Any]:
    view = dict(cell)
    metadata = cell.get("metadata")
    if isinstance(metadata, dict) and "trusted" in metadata:
        view["metadata"] = {k: v for k, v in metadata.items() if k != "trusted"}
    if isinstance(cell.get("source"), str):
        view["source"] = cell["source"].splitlines(True)
    attachments = cell.get("attachments")
    if attachments:
        view["attachments"] = {name: _bundle_view(b) for name, b in attachments.items()}
    if cell.get("cell_type") == "code":
        view["outputs"] = [_output_view(output) for output in cell["outputs"]]
    return view


def _output_view(output: Mapping[str, Any]) -> dict[str, Any]:
    view = dict(output)
    kind = output["output_type"]
    if kind in ("execute_result", "display_data") and output.get("data"):
        view["data"] = _bundle_view(output["data"])
    elif kind == "stream" and isinstance(output["text"], str):
        view["text"] = output["text"].splitlines(True)
    return view


def _bundle_view(bundle: Mapping[str, Any]) -> dict[str, Any]:
    return {
        mime: value.splitlines(True)
        if isinstance(value, str) and (mime.startswith("text/") or mime in _SPLIT_MIMES)
        else value
        for mime, value in bundle.items()
    }
