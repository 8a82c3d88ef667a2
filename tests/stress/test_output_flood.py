"""A flood of a million lines: the live record stays small, the server's memory stays bounded,
and "more output" holds every line (a load test: half a minute of a kernel printing)."""

from __future__ import annotations

import json

import psutil
from helpers import cell, finished, outputs, text_of, write_notebook


async def test_a_million_lines_stay_small_and_nothing_is_lost(server, root_dir, live):
    write_notebook(root_dir / "nb.ipynb", ["for i in range(10**6):\n    print(i)"])
    nb = await live()
    me = psutil.Process()
    rss_before = me.memory_info().rss
    peak = rss_before

    def sample(_nb):
        nonlocal peak
        peak = max(peak, me.memory_info().rss)
        return finished(_nb, "cell-0")

    await nb.run(["cell-0"])
    await nb.wait_for(sample, timeout=240)
    record = cell(nb, "cell-0")
    output = record["output"]
    visible = outputs(record)
    assert visible[-1] == {"more_output": True}
    marker_size = len(f',"{len(visible) - 1}":' + '{"more_output":true}')
    assert (
        len(json.dumps(output, separators=(",", ":"), ensure_ascii=False)) <= 250_000 + marker_size
    )
    more = await nb.more_output("cell-0")
    assert more["truncated"] == 0 and more["discarded"] == 0
    more_text = "".join(
        m.get("text", "") for m in more["messages"] if m.get("output_type") == "stream"
    )
    assert text_of(record) + more_text == "".join(f"{i}\n" for i in range(10**6))
    assert peak - rss_before < 100 * 2**20, f"server RSS grew by {(peak - rss_before) >> 20} MB"
