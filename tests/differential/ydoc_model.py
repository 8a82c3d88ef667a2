"""``@jupyter/ydoc``'s cell and notebook model methods, reproduced on pycrdt.

Each function does what the TypeScript method of the same name does to the shared document
(``javascript/src/ycell.ts``, ``ynotebook.ts`` in jupyter-server/jupyter_ydoc): the same
shared types (``Map``, ``Text``, ``Array`` or plain JSON values), the same keys, the same
transactions. Text offsets are characters here and UTF-8 bytes in pycrdt (UTF-16 units in
Yjs): the resulting Yjs items are the same.
"""

from __future__ import annotations

import copy
from typing import Any

from pycrdt import Array, Map, Text

from .clients import LabClient

Json = Any


def byte_offset(text: str, chars: int) -> int:
    return len(text[:chars].encode())


def map_to_py(value: Any) -> Any:
    return value.to_py() if isinstance(value, (Map, Array, Text)) else copy.deepcopy(value)


def json_equal(a: Json, b: Json) -> bool:
    """``JSONExt.deepEqual`` (a boolean is no number; a missing value reads as null)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# -- cells ------------------------------------------------------------------------------------


def create_outputs(outputs: list[dict[str, Json]]) -> list[Map]:
    """``YCodeCell.createOutputs``: a ``Map`` per output, a stream's text as a ``Text``."""
    created = []
    for output in [copy.deepcopy(o) for o in outputs]:  # one copy each, also of repeats
        if output.get("output_type") == "stream":
            text = output.pop("text", "")
            output["text"] = Text(",".join(text) if isinstance(text, list) else text)
        created.append(Map(output))
    return created


def coupled_metadata(metadata: dict[str, Json]) -> dict[str, Json]:
    """``setMetadata(object)``: ``collapsed`` and ``jupyter.outputs_hidden`` kept equal."""
    clone = copy.deepcopy(metadata)
    if clone.get("collapsed") is not None:
        clone.setdefault("jupyter", {})
        if isinstance(clone["jupyter"], dict):
            clone["jupyter"]["outputs_hidden"] = clone["collapsed"]
    elif (
        isinstance(clone.get("jupyter"), dict)
        and clone["jupyter"].get("outputs_hidden") is not None
    ):
        clone["collapsed"] = clone["jupyter"]["outputs_hidden"]
    return clone


def create_cell(cell: dict[str, Json], client: LabClient) -> Map:
    """``createCell(cell, notebook)``: the new cell's ``Map`` (id: the cell's, or a new one)."""
    cell_type = cell.get("cell_type", "code")
    fields: dict[str, Any] = {
        "source": Text(cell.get("source") or ""),
        "metadata": Map(coupled_metadata(cell.get("metadata") or {})),
        "cell_type": cell_type,
        "id": cell.get("id") or client.new_cell_id(),
    }
    if cell_type == "code":
        fields["outputs"] = Array(create_outputs(cell.get("outputs") or []))
        fields["execution_count"] = cell.get("execution_count")
    elif cell_type == "markdown":
        if cell.get("attachments") is not None:
            fields["attachments"] = copy.deepcopy(cell["attachments"])
    elif cell.get("attachments"):
        fields["attachments"] = copy.deepcopy(cell["attachments"])
    return Map(fields)


def cell_to_json(ycell: Map) -> dict[str, Json]:
    """``YBaseCell.toJSON`` (and the code, markdown and raw cells' versions)."""
    cell_type = ycell.get("cell_type")
    out: dict[str, Json] = {
        "id": ycell.get("id"),
        "cell_type": cell_type,
        "source": str(ycell.get("source") or ""),
        "metadata": map_to_py(ycell.get("metadata")) or {},
    }
    if cell_type == "code":
        outputs = ycell.get("outputs")
        out["outputs"] = [map_to_py(o) for o in outputs] if isinstance(outputs, Array) else []
        out["execution_count"] = ycell.get("execution_count") or None
    elif ycell.get("attachments") is not None:
        out["attachments"] = map_to_py(ycell.get("attachments"))
    return out


def insert_cells(client: LabClient, index: int, cells: list[dict[str, Json]]) -> None:
    """``YNotebook.insertCells``: one undoable transaction."""
    with client.undoable():
        client.cells[index:index] = [create_cell(c, client) for c in cells]


def get_cell_metadata(ycell: Map, key: str | None = None) -> Json:
    metadata = map_to_py(ycell.get("metadata")) or {}
    return metadata if key is None else metadata.get(key)


def set_cell_metadata(client: LabClient, ycell: Map, key: str, value: Json) -> None:
    """``YBaseCell.setMetadata(key, value)`` (``transact(f, false)``), with the coupling of
    ``collapsed`` and ``jupyter.outputs_hidden``."""
    ymetadata = ycell.get("metadata")
    if not isinstance(ymetadata, Map):
        return  # JupyterLab's cell model keeps writing into the Map it was built with
    if json_equal(get_cell_metadata(ycell, key), value):
        return
    with client.plain():
        ymetadata[key] = copy.deepcopy(value)
        if key == "collapsed":
            jupyter = get_cell_metadata(ycell, "jupyter") or {}
            if isinstance(jupyter, dict) and jupyter.get("outputs_hidden") != value:
                set_cell_metadata(client, ycell, "jupyter", {**jupyter, "outputs_hidden": value})
        elif key == "jupyter":
            hidden = value.get("outputs_hidden") if isinstance(value, dict) else None
            if hidden is not None:
                if get_cell_metadata(ycell, "collapsed") != hidden:
                    set_cell_metadata(client, ycell, "collapsed", hidden)
            else:
                delete_cell_metadata(client, ycell, "collapsed")


def delete_cell_metadata(client: LabClient, ycell: Map, key: str) -> None:
    """``YBaseCell.deleteMetadata(key)``."""
    ymetadata = ycell.get("metadata")
    if not isinstance(ymetadata, Map) or key not in ymetadata:
        return
    with client.plain():
        del ymetadata[key]
        jupyter = get_cell_metadata(ycell, "jupyter")
        if key == "collapsed" and isinstance(jupyter, dict):
            others = {k: v for k, v in jupyter.items() if k != "outputs_hidden"}
            if others:
                ymetadata["jupyter"] = others
            elif "jupyter" in ymetadata:
                del ymetadata["jupyter"]
        elif key == "jupyter" and "collapsed" in ymetadata:
            del ymetadata["collapsed"]


def set_source(client: LabClient, ycell: Map, value: str) -> None:
    """``YBaseCell.setSource``: delete everything, insert the new text (undoable)."""
    source = ycell.get("source")
    if not isinstance(source, Text):
        return
    with client.undoable():
        del source[0 : len(str(source).encode())]
        source.insert(0, value)


def update_source(client: LabClient, ycell: Map, start: int, end: int, value: str) -> None:
    """``YBaseCell.updateSource(start, end, value)``: insert, then delete the range after it."""
    source = ycell.get("source")
    if not isinstance(source, Text):
        return
    text = str(source)
    start_b, end_b = byte_offset(text, start), byte_offset(text, end)
    with client.undoable():
        source.insert(start_b, value)
        inserted = len(value.encode())
        if end_b > start_b:
            del source[start_b + inserted : end_b + inserted]


def set_execution_count(client: LabClient, ycell: Map, count: int | None) -> None:
    if ycell.get("execution_count") != count or "execution_count" not in ycell:
        with client.plain():
            ycell["execution_count"] = count


def update_outputs(
    client: LabClient, ycell: Map, start: int, end: int, outputs: list[dict[str, Json]]
) -> None:
    """``YCodeCell.updateOutputs(start, end, outputs)``."""
    youtputs = ycell.get("outputs")
    if not isinstance(youtputs, Array):
        return
    fin = end - start if end < len(youtputs) else len(youtputs) - start
    with client.plain():
        if fin > 0:
            del youtputs[start : start + fin]
        for offset, output in enumerate(create_outputs(outputs)):
            youtputs.insert(start + offset, output)


def clear_execution(client: LabClient, ycell: Map) -> None:
    """``CodeCellModel.clearExecution`` and ``outputHidden = false``, in one transaction, as
    ``NotebookActions.clearOutputs`` / ``clearAllOutputs`` run it for each code cell."""
    with client.plain():
        youtputs = ycell.get("outputs")
        if isinstance(youtputs, Array) and len(youtputs):
            del youtputs[0 : len(youtputs)]
        set_execution_count(client, ycell, None)
        if ycell.get("execution_state", "idle") != "idle":
            ycell["execution_state"] = "idle"
        delete_cell_metadata(client, ycell, "execution")
        if get_cell_metadata(ycell, "trusted") is not True:
            set_cell_metadata(client, ycell, "trusted", True)
        if get_cell_metadata(ycell, "collapsed") is True:
            delete_cell_metadata(client, ycell, "collapsed")


# -- the notebook -----------------------------------------------------------------------------


def get_notebook_metadata(client: LabClient) -> dict[str, Json]:
    return map_to_py(client.meta.get("metadata")) or {}


def set_notebook_metadata(client: LabClient, key: str, value: Json) -> None:
    """``YNotebook.setMetadata(key, value)`` → ``updateMetadata({key: value})``."""
    ymetadata = client.meta.get("metadata")
    if not isinstance(ymetadata, Map):
        return
    if json_equal(get_notebook_metadata(client).get(key), value):
        return
    with client.undoable():
        ymetadata[key] = copy.deepcopy(value)


def delete_notebook_metadata(client: LabClient, key: str) -> None:
    """``YNotebook.deleteMetadata(key)``: every other key set again after a ``clear``."""
    ymetadata = client.meta.get("metadata")
    current = get_notebook_metadata(client)
    if not isinstance(ymetadata, Map) or key not in current:
        return
    del current[key]
    with client.undoable():
        ymetadata.clear()
        for name, value in current.items():
            ymetadata[name] = value
