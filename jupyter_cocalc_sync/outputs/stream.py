"""Stream text as JupyterLab renders it: ``\\r`` and ``\\b`` applied, nothing left to apply.

JupyterLab shows a stream by joining every chunk and then removing overwritten characters: a
``\\b`` deletes the character before it, and a ``\\r`` sends the cursor to the start of the line,
where the following text overwrites the old characters one by one (the tail of a longer old
line stays). A progress bar that redraws itself 10 000 times is therefore one line.

``StreamText`` keeps the rendered text plus where the cursor is on its last line, so chunks can
be applied as they arrive and the stored text never contains a ``\\r`` or ``\\b``.
"""

from __future__ import annotations

import json


class StreamText:
    """The rendered text of one stream output, built chunk by chunk."""

    __slots__ = ("_head_json", "_line_json", "col", "text")

    def __init__(self, text: str = "") -> None:
        self.text = ""
        #: cursor column on the last line, or None when it is at the end of the line
        self.col: int | None = None
        # JSON-escaped lengths of the finished lines and of the last line, kept as chunks
        # arrive: the output handler checks its size limits on every message, and escaping
        # the whole text each time would cost the square of a flood
        self._head_json = 0
        self._line_json = 0
        if text:
            self.feed(text)

    @property
    def json_length(self) -> int:
        """``len(json.dumps(self.text, ensure_ascii=False))``, without escaping the text."""
        return self._head_json + self._line_json + 2

    def set_text(self, text: str) -> None:
        """Start over from ``text`` (the cursor stays where it is)."""
        self.text = text
        start = text.rfind("\n") + 1
        self._head_json = escaped_length(text[:start])
        self._line_json = escaped_length(text[start:])

    def feed(self, chunk: str) -> None:
        """Apply one chunk of raw stream text."""
        if self.col is None and "\r" not in chunk and "\b" not in chunk:
            self.text += chunk  # the common case: plain appends
            end = chunk.rfind("\n") + 1
            if end:
                self._head_json += self._line_json + escaped_length(chunk[:end])
                self._line_json = escaped_length(chunk[end:])
            else:
                self._line_json += escaped_length(chunk)
            return
        chunk = chunk.replace("\r\n", "\n")
        start = self.text.rfind("\n") + 1
        head, line = self.text[:start], self.text[start:]
        pieces = chunk.split("\n")
        for index, piece in enumerate(pieces):
            if index:
                self._head_json += escaped_length(line + "\n")
                head += line + "\n"
                line, self.col = "", None
            if piece:
                line = self._write(line, piece)
        self.text = head + line
        self._line_json = escaped_length(line)

    def _write(self, line: str, piece: str) -> str:
        """Write ``piece`` (no newline) into the current ``line`` at the cursor."""
        col = self.col
        for index, part in enumerate(piece.split("\r")):
            if index:
                col = 0  # carriage return: back to the start of the line
            if "\b" in part:
                line, col = _backspaced(line, col, part)
                continue
            if not part:
                continue
            if col is None or col >= len(line):
                line += part
                col = None
            else:
                line = line[:col] + part + line[col + len(part) :]
                col += len(part)
                if col >= len(line):
                    col = None
        self.col = col
        return line


def _backspaced(line: str, col: int | None, part: str) -> tuple[str, int | None]:
    for char in part:
        position = len(line) if col is None else col
        if char == "\b":
            if position > 0:
                line = line[: position - 1] + line[position:]
                col = None if col is None else position - 1
        elif col is None or col >= len(line):
            line += char
            col = None
        else:
            line = line[:col] + char + line[col + 1 :]
            col += 1
    return line, col


def escaped_length(text: str) -> int:
    """Length of ``text`` as a JSON string body (what ``json.dumps`` writes between quotes)."""
    return len(json.dumps(text, ensure_ascii=False)) - 2


def render(text: str) -> str:
    """``text`` with ``\\r`` and ``\\b`` applied (for imported or one-off stream text)."""
    if "\r" not in text and "\b" not in text:
        return text
    stream = StreamText()
    stream.feed(text)
    return stream.text
