"""The whole-file schema check (``is_valid``) says what nbformat's v4.5 schema says, and checks
each output against its own type only."""

from __future__ import annotations

import copy

import fastjsonschema
import pytest
from nbformat.v4 import new_markdown_cell, new_output

from jupyter_cocalc_sync.format.schema_repair import _fast_check, is_valid

OUTPUTS = [
    new_output("stream", text="a\n"),
    new_output("display_data", data={"text/plain": "x"}),
    new_output("execute_result", data={"text/plain": "x"}, execution_count=1),
    new_output("error", ename="E", evalue="v", traceback=["t"]),
]


def _variants() -> dict[str, list[object]]:
    """Outputs valid and not: each type's, with a field missing, one of another type's, a
    field of the wrong type, an unknown type (objects all: ``repair`` made them so)."""
    variants: dict[str, list[object]] = {"valid": [dict(o) for o in OUTPUTS]}
    for output in OUTPUTS:
        kind = output["output_type"]
        for name in [n for n in output if n != "output_type"]:
            variants[f"{kind} without {name}"] = [{k: v for k, v in output.items() if k != name}]
            variants[f"{kind} with {name} a number"] = [{**output, name: 3}]
        variants[f"{kind} with a stream's name"] = [{**output, "name": "stdout"}]
        variants[f"{kind} with data"] = [{**output, "data": {}}]
    variants["stream named by a number"] = [{**OUTPUTS[0], "name": 1}]
    variants["an unknown type"] = [{"output_type": "hologram"}]
    variants["no type"] = [{"text": ""}]
    variants["a valid one after an invalid one"] = [{"output_type": "error"}, dict(OUTPUTS[0])]
    return variants


VARIANTS = _variants()


def _notebook(outputs: list[object]) -> dict:
    # (by hand: nbformat's ``new_code_cell`` and ``new_notebook`` validate the outputs)
    code = {"id": "c", "cell_type": "code", "metadata": {}, "source": "x"}
    cells = [new_markdown_cell("m", id="m"), {**code, "execution_count": 1, "outputs": outputs}]
    return copy.deepcopy({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})


def _schema_says(nb: dict) -> bool:
    """The whole notebook against the schema's own ``oneOf`` of output types."""
    try:
        _fast_check("")(nb)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@pytest.mark.parametrize("case", VARIANTS)
def test_outputs_are_valid_exactly_when_nbformat_says_so(case):
    nb = _notebook(VARIANTS[case])
    assert is_valid(nb) == _schema_says(nb)


def test_a_valid_notebooks_outputs_are_not_tried_against_every_output_type(monkeypatch):
    # a failed try is an exception made (a message formatted): a notebook that is valid,
    # as most files are, pays for none per output
    raised = []
    made = fastjsonschema.JsonSchemaValueException.__init__

    def counted(self, *args, **kwargs):
        raised.append(args)
        made(self, *args, **kwargs)

    monkeypatch.setattr(fastjsonschema.JsonSchemaValueException, "__init__", counted)
    outputs = [dict(o) for o in OUTPUTS * 5]
    assert is_valid(_notebook(outputs))
    assert len(raised) < len(outputs)
