"""Writing ipynb text: what ``nbformat.writes`` writes, byte for byte, in a fraction of its time.

``nbformat.writes`` copies the notebook three times (``from_dict``, ``split_lines``,
``strip_transient``), validates it, then calls ``json.dumps(nb, indent=1, sort_keys=True,
...)``; with an ``indent`` the standard library encodes in pure Python, one generator step per
value, and a notebook's outputs are mostly lists of lines: most of the time goes there.

Here the notebook is not copied (``_file_view`` makes new containers only where the file's
form differs from the table's: lines, transient metadata), and ``indented_json`` writes the
same text as that ``json.dumps``, encoding every list of strings (the lines) in one C call.

A text the file holds as a list of lines, when nothing in it is escaped in JSON but its newlines
(ASCII without quotes, backslashes or control characters: most printed output and HTML), is not
split into lines and each line encoded: its newlines are replaced by the line breaks of the
list in one C call (``_encoded_lines``), no string per line is made. Any other text is split
and its lines encoded one by one.

A big text is encoded ``PIECE`` characters at a time, never whole, and
``write_nbformat4_to`` writes the file as the text is made: a million printed lines (7 MB) are
not a million strings held at once (60 MB), and no single C call holds the GIL for the whole
text (200 ms: the event loop waits that long even though the save runs in a thread).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from json.encoder import encode_basestring
from typing import Any, Protocol

#: MIME types whose strings nbformat writes as lists of lines, besides ``text/*``
_SPLIT_MIMES = frozenset({"application/javascript", "image/svg+xml"})
#: notebook metadata nbformat never writes to a file (and cells' ``trusted``)
_TRANSIENT_METADATA = frozenset({"orig_nbformat", "orig_nbformat_minor", "signature"})

#: a string as JSON, without escaping non-ASCII (``ensure_ascii=False``): the C encoder
_encode_str: Callable[[str], str] = encode_basestring

#: the control characters but the newline (JSON escapes them; some end lines too)
_CONTROLS_BUT_NEWLINE = bytes(range(32)).replace(b"\n", b"")

#: at most about this many characters are encoded in one C call, and written at a time
PIECE = 1 << 16
#: lines of a list of strings encoded in one C call
LINES = 4096


class TextFile(Protocol):
    def write(self, text: str, /) -> int: ...


def write_nbformat4(nb: Mapping[str, Any]) -> str:
    """The ipynb text of the nbformat-4 notebook ``nb`` (joined strings), as ``nbformat.writes``
    writes it; ``nb`` is not changed."""
    return indented_json(_file_view(nb))


def write_nbformat4_to(nb: Mapping[str, Any], file: TextFile) -> None:
    """``write_nbformat4(nb)`` written to ``file`` about ``PIECE`` characters at a time, as it
    is made (the whole text is never held)."""
    write_json_to(_file_view(nb), file)


def write_json_to(value: Any, file: TextFile) -> None:
    """``indented_json(value)`` written to ``file`` about ``PIECE`` characters at a time."""
    out = _FileOut(file)
    _write(value, out, "\n")
    out.flush()


def indented_json(value: Any) -> str:
    """``json.dumps(value, indent=1, sort_keys=True, separators=(",", ": "),
    ensure_ascii=False)`` for JSON values (dicts with string keys, lists and tuples, strings,
    numbers, booleans, None), the same text."""
    out: list[str] = []
    _write(value, out, "\n")
    return "".join(out)


class _FileOut(list[str]):
    """The text's pieces, written to ``file`` (and forgotten) every ``PIECE`` characters."""

    def __init__(self, file: TextFile) -> None:
        super().__init__()
        self.file = file
        self.size = 0

    def append(self, piece: str) -> None:
        super().append(piece)
        self.size += len(piece)
        if self.size >= PIECE:
            self.flush()

    def flush(self) -> None:
        self.file.write("".join(self))
        self.clear()
        self.size = 0


class _Lines:
    """A text the file holds as its list of lines (``splitlines(True)``), split as written."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _write(value: Any, out: list[str], newline: str) -> None:
    """Append ``value``'s JSON to ``out``; ``newline``: a newline and the indentation of the
    line ``value`` starts on (its items are indented one more)."""
    if isinstance(value, str):
        if len(value) > PIECE:
            _write_long_str(value, out)
        else:
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
        separator = "," + inner
        opening = "[" + inner
        start = 0
        while start < len(value):
            try:
                # strings (lines of text, the bulk of a notebook): a block of them in one C call
                lines = value if len(value) <= LINES else value[start : start + LINES]
                block = separator.join(map(_encode_str, lines))
            except TypeError:  # not only strings: item by item from here
                break
            out.append(opening + block)
            opening = separator
            start += LINES
        for index in range(start, len(value)):
            out.append(opening)
            opening = separator
            _write(value[index], out, inner)
        out.append(newline + "]")
    elif isinstance(value, _Lines):
        _write_lines(value.text, out, newline)
    else:
        out.append(_scalar(value))


def _write_long_str(value: str, out: list[str]) -> None:
    """A long string's JSON, encoded ``PIECE`` characters at a time (each character is
    escaped on its own: the pieces' bodies make the whole string's)."""
    out.append('"')
    for start in range(0, len(value), PIECE):
        out.append(_encode_str(value[start : start + PIECE])[1:-1])
    out.append('"')


def _write_lines(text: str, out: list[str], newline: str) -> None:
    """``text.splitlines(True)``'s JSON, encoded a block of about ``PIECE`` characters at a
    time. A block ends just after a ``\\n``: a line ends there in the whole text too (a
    ``\\r\\n`` is not cut), so the blocks' lines are the text's."""
    if not text:
        out.append("[]")
        return
    separator = "," + newline + " "
    opening = "[" + newline + " "
    start = 0
    while start < len(text):
        end = text.find("\n", start + PIECE) + 1 or len(text)
        out.append(opening + _encoded_lines(text[start:end], separator))
        opening = separator
        start = end
    out.append(newline + "]")


def _encoded_lines(text: str, separator: str) -> str:
    """The JSON strings of ``text.splitlines(True)`` joined by ``separator`` (module
    docstring)."""
    if text.isascii() and '"' not in text and "\\" not in text:
        raw = text.encode("ascii")
        if len(raw.translate(None, _CONTROLS_BUT_NEWLINE)) == len(raw):
            # each character is its own JSON but the newline, after which a line ends (the
            # newline that ends the text ends its last line: no empty line after it)
            body, tail = (text[:-1], '\\n"') if text[-1] == "\n" else (text, '"')
            return '"' + body.replace("\n", '\\n"' + separator + '"') + tail
    return separator.join(map(_encode_str, text.splitlines(True)))


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
        view["source"] = _Lines(cell["source"])
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
        view["text"] = _Lines(output["text"])
    return view


def _bundle_view(bundle: Mapping[str, Any]) -> dict[str, Any]:
    return {
        mime: _Lines(value)
        if isinstance(value, str) and (mime.startswith("text/") or mime in _SPLIT_MIMES)
        else value
        for mime, value in bundle.items()
    }
