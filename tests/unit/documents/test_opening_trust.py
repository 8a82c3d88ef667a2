"""Opening a notebook keeps the trust its outputs had on disk: its signature is looked up in
the signature store only when an output's trust depends on it (computing it is an HMAC of
the whole notebook)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from notebook_documents import notebook_document, notebook_text

from jupyter_cocalc_sync.documents import notebook as notebook_module


def rich_notebook_text() -> str:
    """A notebook whose only cell shows HTML: rendered fully only if the notebook is trusted."""
    nb = json.loads(notebook_text(1))
    nb["cells"][0]["outputs"] = [
        {"output_type": "display_data", "data": {"text/html": "<b>x</b>"}, "metadata": {}}
    ]
    return json.dumps(nb)


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    computed: list[str] = []
    compute = notebook_module.signature_of

    def counting(notary: Any, nb: Any) -> str:
        signature = compute(notary, nb)
        computed.append(signature)
        return signature

    monkeypatch.setattr(notebook_module, "signature_of", counting)
    return computed


async def test_a_notebook_whose_outputs_need_no_trust_is_not_hashed_to_be_opened(
    tmp_path: Path, signatures: list[str]
) -> None:
    async with notebook_document(tmp_path, notebook_text(3, "printed\n")) as document:
        await document.open()
        cells = document.db.get({"type": "cell"})
        assert [cell["metadata"]["trusted"] for cell in cells] == [True] * 3
    assert signatures == []


@pytest.mark.parametrize("signed", [True, False])
async def test_a_notebook_with_outputs_that_need_trust_keeps_its_signature_s_trust(
    tmp_path: Path, signatures: list[str], signed: bool
) -> None:
    async with notebook_document(tmp_path, rich_notebook_text()) as document:
        notary = document.files.file.contents_manager.notary
        if signed:
            notary.sign(nbformat.reads(rich_notebook_text(), as_version=4))
        await document.open()
        [cell] = document.db.get({"type": "cell"})
        assert cell["metadata"]["trusted"] is signed
    assert len(signatures) == 1
