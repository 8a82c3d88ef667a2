"""How outputs look in each place: the table, the saved file, and JupyterLab.

The table holds blob references, the ``{"more_output": true}`` marker and ``input_request``
messages. The ``.ipynb`` file and JupyterLab need plain nbformat outputs:

* blob references are re-inlined as base64 (a blob missing from the store becomes a text
  placeholder, so the output stays valid);
* the marker becomes the overflow itself when saving (``inline_more_output_on_save``), or a
  notice saying how to get it; in JupyterLab it is a readable notice with the URL to fetch;
* an ``input_request`` becomes the prompt, as a stream.

Images in imported files and in outputs a JupyterLab client writes go to the blob store too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ..format.ipynb import OutputsOf, ordered_outputs
from ..sync.table import Record
from .blobs import BlobStore, references
from .handler import is_marker
from .hooks import NamedDocument, OutputHooks
from .overflow import MoreOutputStore

NOTICE_FLAG = "cocalc_sync"


def more_output_url(base_url: str, path: str, cell_id: str) -> str:
    notebook = f"{base_url.rstrip('/')}/api/cocalc-sync/notebooks/{quote(path)}"
    return f"{notebook}/cells/{quote(cell_id)}/more_output"


def _notice(text: str, html: str | None = None) -> dict[str, Any]:
    data = {"text/plain": text}
    if html is not None:
        data["text/html"] = html
    return {
        "output_type": "display_data",
        "data": data,
        "metadata": {NOTICE_FLAG: {"more_output": True}},
    }


def _prompt(message: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": str(message.get("prompt", ""))}


class OutputFormats:
    """Builds a document's ``OutputHooks`` from the blob and overflow stores."""

    def __init__(
        self,
        blobs: BlobStore,
        overflow: MoreOutputStore,
        *,
        base_url: str = "/",
        inline_more_output: bool = True,
    ) -> None:
        self.blobs = blobs
        self.overflow = overflow
        self.base_url = base_url
        self.inline_more_output = inline_more_output

    def for_document(self, document: NamedDocument) -> OutputHooks:
        return self.hooks(lambda: document.path, lambda: document.file_id)

    def hooks(self, path_of: Callable[[], str], doc_id: Callable[[], str]) -> OutputHooks:
        return OutputHooks(
            import_output=lambda output: self.blobs.extract(output, doc_id()),
            prepare_export=lambda records: self.prepare_export(doc_id(), records),
            render_output=lambda output, cell_id: self.render(path_of(), cell_id, output),
            ingest_output=lambda output: self.ingest(output, doc_id()),
        )

    # -- JupyterLab -------------------------------------------------------------------------

    def render(self, path: str, cell_id: str, output: dict[str, Any]) -> dict[str, Any]:
        if is_marker(output):
            url = more_output_url(self.base_url, path, cell_id)
            return _notice(
                "Output truncated: the rest is kept on the server "
                f"(max_output_length / max_output_messages). Fetch it: GET {url}",
                "<p><b>Output truncated</b>: the rest is kept on the server. "
                f'<a href="{url}" target="_blank">Show the rest</a></p>',
            )
        if output.get("output_type") == "input_request":
            return _prompt(output)
        return self.blobs.inline(output)

    def ingest(self, output: dict[str, Any], doc_id: str) -> dict[str, Any]:
        metadata = output.get("metadata")
        if isinstance(metadata, dict) and NOTICE_FLAG in metadata:
            return {"more_output": True}
        return self.blobs.extract(output, doc_id)

    # -- the file ---------------------------------------------------------------------------

    async def prepare_export(self, doc_id: str, records: list[Record]) -> OutputsOf:
        """Fetch what export needs (blobs, overflow), then map cells to nbformat outputs."""
        sha1s = {s for r in records for o in ordered_outputs(r) for s in references(o)}
        overflow: dict[str, dict[str, Any]] = {}
        if self.inline_more_output:
            for record in records:
                if any(is_marker(o) for o in ordered_outputs(record)):
                    more = await self.overflow.read(doc_id, record["id"])
                    overflow[record["id"]] = more
                    for message in more["messages"]:
                        sha1s.update(references(message))
        # a snapshot of the blobs: the returned function may run off the event loop
        blobs = await self.blobs.prefetch(sha1s)

        def outputs_of(record: Record) -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = []
            for output in ordered_outputs(record):
                if is_marker(output):
                    # the overflow continues the visible part: a stream cut by the marker is
                    # one stream again (streams that were apart in the table stay apart)
                    more = self._expand(overflow.get(record["id"]), blobs)
                    result[-1:] = _merge_streams([*result[-1:], *more])
                elif output.get("output_type") == "input_request":
                    result.append(_prompt(output))
                elif "output_type" in output:
                    result.append(self.blobs.inline(output, blobs))
            return result

        return outputs_of

    def _expand(
        self, more: dict[str, Any] | None, blobs: dict[str, tuple[str, bytes]]
    ) -> list[dict[str, Any]]:
        if more is None:
            return [
                _plain_notice(
                    "Output truncated here; the rest was not saved in this file "
                    "(CocalcSync.inline_more_output_on_save is False)."
                )
            ]
        messages = [self.blobs.inline(m, blobs) for m in more["messages"]]
        if more["truncated"]:
            gap = _plain_notice(
                f"[... {more['discarded']} characters in {more['truncated']} output chunks "
                "were dropped here (CocalcSync.max_more_output_bytes) ...]"
            )
            split = more["head_count"]
            messages = [*messages[:split], gap, *messages[split:]]
        return messages


def _plain_notice(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text + "\n"}


def _merge_streams(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join consecutive streams of one name (visible part + overflow are one stream)."""
    merged: list[dict[str, Any]] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and output.get("output_type") == last.get("output_type") == "stream"
            and output.get("name") == last.get("name")
            and set(output) == set(last) == {"output_type", "name", "text"}
        ):
            merged[-1] = {**last, "text": last["text"] + output["text"]}
        else:
            merged.append(output)
    return merged
