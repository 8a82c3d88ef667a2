"""OutputHandler, the overflow store and the blob store, on their own (no kernel)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from postgres import worker_for

from jupyter_cocalc_sync.outputs import handler as handler_module
from jupyter_cocalc_sync.outputs.blobs import BlobStore
from jupyter_cocalc_sync.outputs.handler import (
    DisplayIndex,
    OutputHandler,
    OutputLimits,
    _longest_prefix,
    dumps,
)
from jupyter_cocalc_sync.outputs.overflow import MoreOutputStore
from jupyter_cocalc_sync.outputs.stream import StreamText, escaped_length, render


def msg(msg_type: str, **content) -> dict:
    return {"msg_type": msg_type, "header": {"msg_type": msg_type}, "content": content}


def stream(text: str, name: str = "stdout") -> dict:
    return msg("stream", name=name, text=text)


@pytest.fixture
def worker(store_spec):
    """The overflow's and the blobs' store, on each backend in turn."""
    worker = worker_for(store_spec)
    yield worker
    worker.close()


async def overflow_store(worker, max_bytes: int) -> MoreOutputStore:
    store = MoreOutputStore(worker, max_bytes=max_bytes)
    await store.open()
    return store


def visible_text(handler: OutputHandler) -> str:
    return "".join(m.get("text", "") for m in handler.messages if m.get("output_type") == "stream")


def map_length(messages: list[dict]) -> int:
    return len(
        json.dumps(
            {str(i): m for i, m in enumerate(messages)}, separators=(",", ":"), ensure_ascii=False
        )
    )


def test_carriage_returns_and_backspaces_render_like_jupyterlab():
    assert render("abc\rX") == "Xbc"
    assert render("hello\rhi\n") == "hillo\n"
    assert render("abc\b\bd") == "ad"
    assert render("a\r\nb") == "a\nb"
    progress = StreamText()
    for i in range(10_000):
        progress.feed(f"\r{i / 100:6.2f}% |{'#' * (i // 500)}")
    progress.feed("\n")
    assert progress.text.count("\n") == 1 and "\r" not in progress.text
    assert progress.text.startswith(" 99.99% |")


def test_a_tqdm_loop_of_10000_updates_stores_one_line():
    handler = OutputHandler("c")
    for i in range(10_000):
        handler.handle(stream(f"\r{i:5d}/10000 [{'=' * (i // 1000)}>]", name="stderr"))
    handler.handle(stream("\n", name="stderr"))
    assert len(handler.messages) == 1
    assert handler.messages[0]["text"] == " 9999/10000 [=========>]\n"


def test_consecutive_streams_coalesce_per_name():
    handler = OutputHandler("c")
    for text, name in [("a\n", "stdout"), ("b\n", "stdout"), ("e\n", "stderr"), ("c\n", "stdout")]:
        handler.handle(stream(text, name))
    assert [(m["name"], m["text"]) for m in handler.messages] == [
        ("stdout", "a\nb\n"),
        ("stderr", "e\n"),
        ("stdout", "c\n"),
    ]


def test_an_answered_input_joins_the_stream_before_it_and_what_follows():
    """One stdout stream, as JupyterLab shows it: JupyterLab merges neighbouring streams of one
    name in its own copy and writes the merged text back into the document."""
    handler = OutputHandler("c")
    handler.handle(stream("before\n"))
    request = {"output_type": "input_request", "prompt": "Name: ", "password": False}
    index = handler.add_visible(request)
    assert handler.take_patch() == {"0": handler.messages[0], "1": request}
    handler.answer(index, "Name: Ada\n")
    handler.handle(stream("hello Ada\n"))
    joined = {"output_type": "stream", "name": "stdout", "text": "before\nName: Ada\nhello Ada\n"}
    assert handler.messages == [joined]
    assert handler.length == map_length(handler.messages)
    assert handler.take_patch() == {"0": joined, "1": None}


def test_an_answered_input_not_last_is_replaced_in_place():
    handler = OutputHandler("c")
    index = handler.add_visible({"output_type": "input_request", "prompt": "? ", "password": True})
    handler.handle(msg("display_data", data={"text/plain": "from a thread"}, metadata={}))
    handler.answer(index, "? \n")
    assert [m["output_type"] for m in handler.messages] == ["stream", "display_data"]
    assert handler.messages[0]["text"] == "? \n"
    assert handler.length == map_length(handler.messages)


async def test_flood_is_truncated_and_visible_plus_more_output_is_everything(worker):
    store = await overflow_store(worker, max_bytes=10 << 20)
    handler = OutputHandler(
        "c",
        limits=OutputLimits(max_length=5000, max_messages=50),
        overflow=lambda: store.writer("doc", "c"),
    )
    lines = [f"{i}\n" for i in range(20_000)]
    for start in range(0, len(lines), 7):  # chunks as a kernel sends them
        handler.handle(stream("".join(lines[start : start + 7])))
    await handler.finish()
    assert handler.messages[-1] == {"more_output": True}
    assert map_length(handler.messages[:-1]) <= 5000
    more = await store.read("doc", "c")
    assert more["truncated"] == more["discarded"] == 0
    assert visible_text(handler) + "".join(m["text"] for m in more["messages"]) == "".join(lines)


def longest_prefix_by_bisection(message: dict, text: str, budget: int) -> int:
    """What ``_longest_prefix`` answers, found the plain way (the prefix's JSON each step)."""
    base = len(dumps({**message, "text": ""}))
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if base + len(dumps(text[:mid])) - 2 <= budget:
            lo = mid
        else:
            hi = mid - 1
    cut = text.rfind("\n", 0, lo)
    return cut + 1 if cut >= 0 and lo - cut < 4096 else lo


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from('ab\n"\\\t\x01é'), max_size=80),
    budget=st.integers(0, 300),
)
def test_the_visible_part_of_a_stream_is_its_longest_prefix_that_fits(text: str, budget: int):
    message = {"output_type": "stream", "name": "stdout", "text": ""}
    assert _longest_prefix(message, text, budget) == longest_prefix_by_bisection(
        message, text, budget
    )


def test_a_flood_crossing_the_limit_is_cut_with_a_few_escapes(monkeypatch):
    # the handler runs on the event loop: a bisection escaped the whole prefix at each of its
    # ~18 steps (16 times the text in all), 30–50 ms for the 250 kB a flood crosses the limit with
    escaped: list[int] = []

    def counting(function):
        def count(value):
            result = function(value)
            escaped.append(result if isinstance(result, int) else len(result))
            return result

        return count

    monkeypatch.setattr(handler_module, "dumps", counting(handler_module.dumps))
    monkeypatch.setattr(handler_module, "escaped_length", counting(escaped_length))
    text = "".join(f"{i}\n" for i in range(60_000))  # 350 kB, the visible limit 250 kB
    handler = OutputHandler("c")
    handler.handle(stream(text))
    assert handler.messages[-1] == {"more_output": True}
    assert map_length(handler.messages[:-1]) <= OutputLimits().max_length
    assert sum(escaped) < 8 * len(text), f"{sum(escaped) / len(text):.0f} times the text escaped"


async def test_the_overflow_read_a_page_at_a_time_is_all_of_it(worker):
    store = await overflow_store(worker, max_bytes=10 << 20)
    handler = OutputHandler(
        "c",
        limits=OutputLimits(max_length=5000, max_messages=50),
        overflow=lambda: store.writer("doc", "c"),
    )
    for start in range(0, 200_000, 1000):
        handler.handle(stream("".join(f"{i}\n" for i in range(start, start + 1000))))
    await handler.finish()
    whole = await store.read("doc", "c")
    pages, offset = [], 0
    while True:
        page = await store.read_page("doc", "c", offset, 3)
        pages.append(page)
        offset += len(page.rows)
        if offset >= page.total:
            break
    paged = [message for page in pages for _, message in page.rows]
    assert "".join(m["text"] for m in paged) == "".join(m["text"] for m in whole["messages"])
    assert len(pages) > 1 and all(len(page.rows) <= 3 for page in pages)
    first = pages[0]
    assert first.bytes == sum(page.page_bytes for page in pages) > 0
    assert first.head_entries == first.total and first.truncated == 0


async def test_overflow_past_its_budget_keeps_head_and_tail_and_counts_the_gap(worker):
    store = await overflow_store(worker, max_bytes=400_000)
    handler = OutputHandler(
        "c", limits=OutputLimits(max_length=3000), overflow=lambda: store.writer("doc", "c")
    )
    lines = [f"line {i}\n" for i in range(300_000)]
    total = "".join(lines)
    for start in range(0, len(lines), 100):
        handler.handle(stream("".join(lines[start : start + 100])))
    await handler.finish()
    more = await store.read("doc", "c")
    shown = visible_text(handler)
    head, tail = more["messages"][0]["text"], more["messages"][-1]["text"]
    assert len(more["messages"]) == 2 and more["truncated"] > 0
    assert total.startswith(shown + head)
    assert total.endswith(tail)
    assert len(shown) + len(head) + more["discarded"] + len(tail) == len(total)
    stored = await worker.run(
        lambda c: c.execute("SELECT SUM(LENGTH(data)) FROM overflow").fetchone()[0]
    )
    assert stored <= 400_000 + 2 * 65536


async def test_message_count_limit_and_errors_stay_visible(worker):
    store = await overflow_store(worker, max_bytes=10 << 20)
    handler = OutputHandler(
        "c",
        limits=OutputLimits(max_length=10**9, max_messages=500),
        overflow=lambda: store.writer("doc", "c"),
    )
    for i in range(600):
        handler.handle(msg("display_data", data={"text/plain": f"item {i}"}, metadata={}))
    handler.handle(msg("error", ename="ValueError", evalue="boom", traceback=["t1", "t2"]))
    await handler.finish()
    assert len(handler.messages) == 502  # 500, the marker, the error
    assert handler.messages[500] == {"more_output": True}
    assert handler.messages[501]["ename"] == "ValueError"
    more = await store.read("doc", "c")
    assert [m["data"]["text/plain"] for m in more["messages"]] == [
        f"item {i}" for i in range(500, 600)
    ]


def test_clear_output_wait_and_more_output_mode_reset():
    handler = OutputHandler("c", limits=OutputLimits(max_length=200))
    handler.handle(stream("x" * 500))
    assert handler.overflowing
    handler.handle(msg("clear_output", wait=True))
    assert handler.overflowing  # nothing cleared until the next output
    handler.handle(stream("fresh\n"))
    assert not handler.overflowing
    assert handler.messages == [{"output_type": "stream", "name": "stdout", "text": "fresh\n"}]
    handler.handle(msg("clear_output", wait=False))
    assert handler.messages == []


def test_update_display_updates_this_cell_and_other_cells():
    written = []
    displays = DisplayIndex(write_other=lambda cell, index, out: written.append((cell, index, out)))
    first = OutputHandler("first", displays=displays)
    first.handle(
        msg("display_data", data={"text/plain": "0%"}, metadata={}, transient={"display_id": "bar"})
    )
    first.handle(
        msg(
            "update_display_data",
            data={"text/plain": "50%"},
            metadata={},
            transient={"display_id": "bar"},
        )
    )
    assert first.messages[0]["data"] == {"text/plain": "50%"}
    later = OutputHandler("later", displays=displays)
    later.handle(
        msg(
            "update_display_data",
            data={"text/plain": "100%"},
            metadata={},
            transient={"display_id": "bar"},
        )
    )
    assert later.messages == []
    assert written == [
        (
            "first",
            0,
            {"output_type": "display_data", "data": {"text/plain": "100%"}, "metadata": {}},
        )
    ]


def test_patches_replace_old_output_and_delete_cleared_indexes():
    handler = OutputHandler("c")
    assert handler.take_patch() == {}  # a run starts by replacing the old output
    handler.handle(stream("a\n"))
    handler.handle(msg("display_data", data={"text/plain": "x"}, metadata={}))
    assert set(handler.take_patch()) == {"0", "1"}
    assert handler.take_patch() is None
    handler.handle(msg("clear_output", wait=False))
    handler.handle(stream("b\n"))
    assert handler.take_patch() == {
        "0": {"output_type": "stream", "name": "stdout", "text": "b\n"},
        "1": None,
    }


async def test_blobs_are_stored_once_by_sha1_and_svg_stays_text(worker):
    blobs = BlobStore(worker, threshold=1000)
    await blobs.open()
    png = os.urandom(5000)
    b64 = base64.b64encode(png).decode()
    svg = "<svg xmlns='http://www.w3.org/2000/svg'>" + "<g/>" * 2000 + "</svg>"
    outputs = []
    for cell in range(50):
        handler = OutputHandler(f"c{cell}", blobs=blobs, doc_id="doc")
        handler.handle(
            msg(
                "display_data",
                data={"image/png": b64, "image/svg+xml": svg, "text/plain": "fig"},
                metadata={},
            )
        )
        outputs.append(handler.messages[0])
    sha1 = hashlib.sha1(png).hexdigest()
    assert all(o["data"]["image/png"] == f"sha1:{sha1}" for o in outputs)
    assert all(o["data"]["image/svg+xml"] == svg for o in outputs)
    await blobs.flushed()
    count = await worker.run(lambda c: c.execute("SELECT COUNT(*) FROM blobs").fetchone()[0])
    assert count == 1
    fresh = BlobStore(worker)  # nothing cached: read from the store
    assert await fresh.get(sha1) == ("image/png", png)
    small = OutputHandler("s", blobs=blobs).add(
        {
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(b"tiny").decode()},
            "metadata": {},
        }
    )
    assert small == 0
    assert blobs.inline(outputs[0])["data"]["image/png"] == b64
    # unreferenced blobs are collected, referenced ones are kept
    orphan = blobs.put(os.urandom(3000), "image/png")
    await blobs.flushed()
    assert await blobs.collect(older_than=-1) == 1
    assert await BlobStore(worker).get(orphan) is None
    assert (await fresh.get(sha1)) is not None


async def test_blobs_can_be_extracted_on_worker_threads(worker):
    """An import off the event loop decodes and hashes its images on a thread: the blobs are
    cached at once and reach SQLite, whether or not the store has seen the loop before."""
    blobs = BlobStore(worker, threshold=1000)
    await blobs.open()
    images = [os.urandom(4000) for _ in range(2)]

    def extract(raw: bytes) -> dict:
        output = {
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(raw).decode()},
        }
        return blobs.extract(output, "doc")

    first = await anyio.to_thread.run_sync(extract, images[0])  # the loop is not known yet
    second = await asyncio.to_thread(extract, images[1])  # now it is
    sha1s = [hashlib.sha1(raw).hexdigest() for raw in images]
    assert [first["data"]["image/png"], second["data"]["image/png"]] == [f"sha1:{s}" for s in sha1s]
    assert blobs.cached(sha1s[1]) == ("image/png", images[1])
    await blobs.flushed()
    fresh = BlobStore(worker)
    for sha1, raw in zip(sha1s, images, strict=True):
        assert await fresh.get(sha1) == ("image/png", raw)
    refs = await worker.run(lambda c: c.execute("SELECT COUNT(*) FROM blob_refs").fetchone()[0])
    assert refs == 2
