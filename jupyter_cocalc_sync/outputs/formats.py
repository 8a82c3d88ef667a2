"""How outputs look in each place: the table, the saved file, and JupyterLab.

The table holds blob references, the ``{"more_output": true}`` marker and ``input_request``
messages. The ``.ipynb`` file and JupyterLab need plain nbformat outputs:

* blob references are re-inlined as base64 (a blob missing from the store becomes a text
  placeholder, so the output stays valid);
* the marker becomes the overflow itself when saving (``inline_more_output_on_save``), or a
  notice saying how to get it; in JupyterLab it is ``MORE_OUTPUT_MIME``, which the frontend
  extension renders as "Show more" loading the overflow a page at a time
  (``overflow_page``), with a plain-text notice and the URL for other frontends;
* an ``input_request`` becomes the prompt in the file; in JupyterLab it is
  ``INPUT_REQUEST_MIME``, which the frontend extension renders as an input box (a password
  field for ``getpass``) in every collaborator's tab.

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

#: the key, in an output's metadata, of what an output shown in JupyterLab stands for
NOTICE_FLAG = "cocalc_sync"
#: what the frontend extension (labextension/src) renders: a pending input()/getpass() of a
#: server-run cell (``{path, cell_id, prompt, password}``), and the "more output" marker
#: (``{path, cell_id}``)
INPUT_REQUEST_MIME = "application/vnd.jupyter-cocalc-sync.input-request+json"
MORE_OUTPUT_MIME = "application/vnd.jupyter-cocalc-sync.more-output+json"


def more_output_url(base_url: str, path: str, cell_id: str) -> str:
    notebook = f"{base_url.rstrip('/')}/api/cocalc-sync/notebooks/{quote(path)}"
    return f"{notebook}/cells/{quote(cell_id)}/more_output"


def _shown(stands_for: str, data: dict[str, Any]) -> dict[str, Any]:
    """A ``display_data`` that JupyterLab shows in place of a table output (``NOTICE_FLAG``
    says which, for the way back)."""
    return {
        "output_type": "display_data",
        "data": data,
        "metadata": {NOTICE_FLAG: {stands_for: True}},
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
            return _shown(
                "more_output",
                {
                    MORE_OUTPUT_MIME: {"path": path, "cell_id": cell_id},
                    "text/plain": "Output truncated: the rest is kept on the server "
                    f"(max_output_length / max_output_messages). Fetch it: GET {url}",
                },
            )
        if output.get("output_type") == "input_request":
            prompt, password = str(output.get("prompt", "")), bool(output.get("password"))
            request = {"path": path, "cell_id": cell_id, "prompt": prompt, "password": password}
            return _shown(
                "input_request",
                {INPUT_REQUEST_MIME: request, "text/plain": f"{prompt}(waiting for input)"},
            )
        return self.blobs.inline(output)

    def ingest(self, output: dict[str, Any], doc_id: str) -> dict[str, Any]:
        """A JupyterLab output for the table: what ``render`` showed goes back to what it
        stands for (the client only ever sends back what the server rendered)."""
        metadata = output.get("metadata")
        stands_for = metadata.get(NOTICE_FLAG) if isinstance(metadata, dict) else None
        if isinstance(stands_for, dict) and stands_for.get("input_request"):
            data = output.get("data")
            request = data.get(INPUT_REQUEST_MIME) if isinstance(data, dict) else None
            if isinstance(request, dict):
                return {
                    "output_type": "input_request",
                    "prompt": str(request.get("prompt", "")),
                    "password": bool(request.get("password")),
                }
        if stands_for is not None:
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
            gap = _gap_notice(more["truncated"], more["discarded"])
            split = more["head_count"]
            messages = [*messages[:split], gap, *messages[split:]]
        return messages


#: a page of the overflow as ``overflow_page`` answers it
Page = dict[str, Any]


def empty_page(offset: int) -> Page:
    """A page of a cell that keeps no overflow."""
    return {
        "messages": [],
        "truncated": 0,
        "discarded": 0,
        "offset": offset,
        "next_offset": None,
        "total": 0,
        "bytes": 0,
        "page_bytes": 0,
    }


async def overflow_page(
    overflow: MoreOutputStore,
    blobs: BlobStore | None,
    doc_id: str,
    cell_id: str,
    offset: int,
    limit: int,
) -> Page:
    """Entries ``offset`` to ``offset + limit`` of a cell's overflow as JupyterLab shows
    outputs (blobs inlined, streams joined, a notice where the dropped part was), with where
    the next page starts and the sizes to tell the user."""
    page = await overflow.read_page(doc_id, cell_id, offset, limit)
    messages = [message for _, message in page.rows]
    if blobs is not None:
        found = await blobs.prefetch({s for m in messages for s in references(m)})
        messages = [blobs.inline(message, found) for message in messages]
    split = page.head_entries - offset
    if page.truncated and 0 <= split < len(messages):
        gap = _gap_notice(page.truncated, page.discarded)
        messages = [*_merge_streams(messages[:split]), gap, *_merge_streams(messages[split:])]
    else:
        messages = _merge_streams(messages)
    end = offset + len(page.rows)
    return {
        **empty_page(offset),
        "messages": messages,
        "truncated": page.truncated,
        "discarded": page.discarded,
        "next_offset": end if end < page.total else None,
        "total": page.total,
        "bytes": page.bytes,
        "page_bytes": page.page_bytes,
    }


def _plain_notice(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text + "\n"}


def _gap_notice(truncated: int, discarded: int) -> dict[str, Any]:
    return _plain_notice(
        f"[... {discarded} characters in {truncated} output chunks "
        "were dropped here (CocalcSync.max_more_output_bytes) ...]"
    )


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
