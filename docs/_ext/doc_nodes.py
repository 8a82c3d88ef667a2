"""docutils nodes the generated pages are built of: tables and text with inline code."""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence

from docutils import nodes

#: what a table cell may be given as: plain text, or nodes already built
Cell = str | nodes.Node | Sequence[nodes.Node]

#: ``code`` (as in reStructuredText) or `code` (as in Markdown): shown as inline code
_INLINE_CODE = re.compile(r"``(.+?)``|`([^`]+)`")


def inline(text: str) -> list[nodes.Node]:
    """``text`` as text nodes, its backquoted parts as inline code."""
    result: list[nodes.Node] = []
    position = 0
    for match in _INLINE_CODE.finditer(text):
        if match.start() > position:
            result.append(nodes.Text(text[position : match.start()]))
        code = match.group(1) or match.group(2)
        result.append(nodes.literal(code, code))
        position = match.end()
    if position < len(text):
        result.append(nodes.Text(text[position:]))
    return result


def paragraphs(text: str) -> list[nodes.Node]:
    """A docstring or a trait's help as paragraphs (blank lines separate them)."""
    cleaned = inspect.cleandoc(text)
    return [
        nodes.paragraph("", "", *inline(" ".join(block.split())))
        for block in cleaned.split("\n\n")
        if block.strip()
    ]


def code(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def _cell_nodes(cell: Cell) -> list[nodes.Node]:
    """A cell's content as body elements: runs of inline nodes become one paragraph each."""
    if isinstance(cell, str):
        return [nodes.paragraph("", "", *inline(cell))]
    given = [cell] if isinstance(cell, nodes.Node) else list(cell)
    result: list[nodes.Node] = []
    run: list[nodes.Node] = []
    for node in given:
        if isinstance(node, nodes.Body):
            if run:
                result.append(nodes.paragraph("", "", *run))
                run = []
            result.append(node)
        else:
            run.append(node)
    if run:
        result.append(nodes.paragraph("", "", *run))
    return result


def _row(cells: Sequence[Cell]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        row += nodes.entry("", *_cell_nodes(cell))
    return row


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, prose_column: int = -1
) -> nodes.table:
    """A table with a header row; every row has one cell per header. The column
    ``prose_column`` (first or last) holds the long text and gets the room (``tables.css``)."""
    group = nodes.tgroup(cols=len(headers))
    for _ in headers:
        group += nodes.colspec(colwidth=1)
    group += nodes.thead("", _row(headers))
    body = nodes.tbody()
    for cells in rows:
        if len(cells) != len(headers):
            raise ValueError(f"a row of {len(cells)} cells in a table of {len(headers)} columns")
        body += _row(cells)
    group += body
    prose = "prose-first" if prose_column == 0 else "prose-last"
    return nodes.table("", group, classes=["generated-table", "colwidths-auto", prose])
