"""Log and traffic grow with the output that is new, not with the size of the cell.

A stream that grows costs what was appended; a progress bar costs the line it redraws; when a
run ends its intermediate versions are squashed into one. Measured from outside: the bytes of
the notebook's rows in the store, and the bytes each kind of client receives.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from helpers import eventually, write_notebook
from pycrdt import Text
from test_durability import output_text, syncdb_peer, ynotebook_peer

STREAM = """
import sys, time
for i in range(200):
    sys.stdout.write("".join(f"{i:04d}-{j} " + "x" * 92 + "\\n" for j in range(5)))
    sys.stdout.flush()
    time.sleep(0.01)
"""

PROGRESS = """
import sys, time
print("header " * 7000)
for i in range(3000):
    sys.stdout.write(f"\\r{i:5d}/3000 " + "#" * (i // 100))
    sys.stdout.flush()
    time.sleep(0.0007)
print()
"""


def log_bytes(store: Path, file_id: str) -> tuple[int, int]:
    """``(bytes, versions)`` of the notebook's change log rows."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        size, count = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(data)), 0), COUNT(*) FROM changes WHERE doc = ?",
            (file_id,),
        ).fetchone()
    finally:
        conn.close()
    return size, count


class StreamAsJupyterLabShowsIt:
    """Applies a stream ``Text``'s events the way JupyterLab's output model does: a delete
    removes characters from the end of the output, an insert appends."""

    def __init__(self, text: Text) -> None:
        self.value = str(text)
        self._subscription = text.observe(self._on_event)

    def _on_event(self, event) -> None:
        for op in event.delta:
            if "delete" in op:
                encoded = self.value.encode()
                self.value = encoded[: len(encoded) - op["delete"]].decode()
            elif "insert" in op:
                self.value += op["insert"]


async def run_and_measure(server, root_dir, live, extension, code: str) -> dict:
    write_notebook(root_dir / "nb.ipynb", [code])
    store = Path(extension.store_path)
    nb = await live("nb.ipynb")
    before, _ = log_bytes(store, nb.file_id)
    async with (
        syncdb_peer(server, nb.file_id) as (peer, syncdb_channel),
        ynotebook_peer(server, "nb.ipynb") as (lab, lab_channel),
    ):
        syncdb_start, lab_start = syncdb_channel.received, lab_channel.received

        def first_output():
            outputs = lab.ycells[0].get("outputs")
            return outputs is not None and len(outputs) > 0 and "text" in outputs[0]

        await nb.run(["cell-0"])
        await eventually(first_output, lab.ydoc, timeout=60)
        # from here on, the text as JupyterLab's output model would show it
        shown = StreamAsJupyterLabShowsIt(lab.ycells[0]["outputs"][0]["text"])
        await nb.wait_idle(timeout=120)
        lab_outputs = await _settled_outputs(lab, nb)
        received = {
            "syncdb": syncdb_channel.received - syncdb_start,
            "lab": lab_channel.received - lab_start,
        }
        peer_text = output_text(peer, "cell-0")
    record = nb.get_one({"type": "cell", "id": "cell-0"})
    final = len(json.dumps(record["output"], separators=(",", ":")))
    await extension.history.changelog.flushed()
    print(f"final output {final} B; received: {received}")
    return {
        "nb": nb,
        "store": store,
        "before": before,
        "final": final,
        "received": received,
        "record": record,
        "lab_outputs": lab_outputs,
        "lab_shown": shown.value,
        "peer_text": peer_text,
    }


async def _settled_outputs(lab, nb):
    expected = "".join(
        o.get("text", "")
        for _, o in sorted(
            nb.get_one({"type": "cell", "id": "cell-0"})["output"].items(),
            key=lambda kv: int(kv[0]),
        )
    )

    def lab_text() -> str:
        outputs = lab.ycells[0].get("outputs") or []
        return "".join(str(o["text"]) for o in outputs if "text" in o)

    await eventually(lambda: lab_text() == expected, lab.ydoc)
    return lab_text()


async def test_a_growing_stream_costs_what_it_appends(server, root_dir, live, jp_serverapp):
    extension = jp_serverapp.web_app.settings["cocalc_sync"]
    result = await run_and_measure(server, root_dir, live, extension, STREAM)
    text = result["record"]["output"]["0"]["text"]
    assert text.count("\n") == 1000 and result["peer_text"] == text
    final = result["final"]
    # every client received about the output once (a rewrite per flush would be ~20x)
    assert result["received"]["syncdb"] < 1.5 * final + 20_000, result["received"]
    assert result["received"]["lab"] < 1.5 * final + 20_000, result["received"]
    assert result["lab_shown"] == text  # what JupyterLab's stream model shows
    # the log grew by about the output once, and the run left few versions
    await _squashed(extension, result)
    grown, _ = log_bytes(result["store"], result["nb"].file_id)
    print(f"log grew {grown - result['before']} B for {final} B of output")
    assert grown - result["before"] < 2 * final + 20_000, (grown - result["before"], final)


async def test_a_progress_bar_costs_the_line_it_redraws(server, root_dir, live, jp_serverapp):
    extension = jp_serverapp.web_app.settings["cocalc_sync"]
    result = await run_and_measure(server, root_dir, live, extension, PROGRESS)
    text = "".join(o["text"] for o in result["record"]["output"].values())
    assert text.endswith(" 2999/3000 " + "#" * 29 + "\n")
    assert "\r" not in text and result["lab_outputs"] == text == result["peer_text"]
    assert result["lab_shown"] == text  # JupyterLab applies the rewrites to the same text
    final = result["final"]
    assert result["received"]["syncdb"] < 1.5 * final + 30_000, result["received"]
    assert result["received"]["lab"] < 1.5 * final + 30_000, result["received"]
    await _squashed(extension, result)
    grown, _ = log_bytes(result["store"], result["nb"].file_id)
    print(f"log grew {grown - result['before']} B for {final} B of output")
    assert grown - result["before"] < 2 * final + 30_000, (grown - result["before"], final)


async def _squashed(extension, result) -> None:
    """Wait for the run's versions to be squashed; the history stays readable."""
    from helpers import poll

    nb = result["nb"]

    async def few_versions() -> bool:
        # the table's log, and the YNotebook's (a JupyterLab client was connected)
        return (
            log_bytes(result["store"], nb.file_id)[1] <= 8
            and log_bytes(result["store"], f"{nb.file_id}#ynotebook")[1] <= 12
        )

    await poll(few_versions, timeout=60)
    history = await nb.client.request("GET", nb.client.notebook_url(nb.path, "/history"))
    versions = [v["version"] for v in history["versions"]]
    # the first version (the import) and the last (the run's result) read back
    first = await nb.client.request(
        "GET", nb.client.notebook_url(nb.path, f"/history/{versions[0]}")
    )
    last = await nb.client.request(
        "GET", nb.client.notebook_url(nb.path, f"/history/{versions[-1]}")
    )
    cell = next(r for r in first["records"] if r["id"] == "cell-0")
    assert not cell.get("output")
    cell = next(r for r in last["records"] if r["id"] == "cell-0")
    assert cell["output"] == result["record"]["output"]
