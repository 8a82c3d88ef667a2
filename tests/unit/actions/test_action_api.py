"""The notebook actions are declared once (``action_api.py``): the server's methods, the
parameter checks of ``POST …/actions`` and the client's methods all follow that list."""

from __future__ import annotations

import inspect

import pytest

from jupyter_cocalc_sync.action_api import ACTIONS, parse_action
from jupyter_cocalc_sync.actions.calls import RUN_ACTIONS
from jupyter_cocalc_sync.actions.notebook import NotebookActions
from jupyter_cocalc_sync.client.client import LiveNotebook
from jupyter_cocalc_sync.errors import InvalidActionError


def _public_coroutines(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def _params(signature: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_the_server_implements_exactly_the_declared_actions():
    implemented = _public_coroutines(NotebookActions)
    assert sorted(implemented) == sorted(ACTIONS)
    for name, action in ACTIONS.items():
        # names, kinds and defaults (mypy checks the types); the origin is the instance's
        assert _params(implemented[name]) == _params(action.signature), name
        assert action.doc, f"{name} says what it does"


def test_the_client_has_one_method_per_action_with_the_declared_parameters():
    for name, action in ACTIONS.items():
        method = getattr(LiveNotebook, name)
        if name == "run_all":  # the client's own: runs and waits (client.py)
            continue
        assert inspect.signature(method).parameters == action.signature.parameters, name
        assert inspect.getdoc(method) == action.doc


def test_run_actions_are_the_declared_ones():
    assert {"set_kernel", "run_cells", "run_all", "run_all_above", "run_all_below"} == RUN_ACTIONS


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "explode"}, '"action" must be one of'),
        ({}, '"action" must be one of'),
        ({"action": "insert_cell"}, "insert_cell needs ['delta']"),
        ({"action": "insert_cell", "delta": 1, "where": 2}, "takes ['cell_type', 'delta', 'id'"),
        ({"action": "run_all", "ids": []}, "run_all takes no parameters, not ['ids']"),
        ({"action": "move_cell", "id": "a", "delta": "1"}, "'delta' must be an integer"),
        ({"action": "move_cell", "id": "a", "delta": True}, "'delta' must be an integer"),
        ({"action": "split_cell", "id": "a", "cursor": 1.5}, "'cursor' must be an integer"),
        ({"action": "split_cell", "id": "", "cursor": 1}, "'id' must be a cell id"),
        ({"action": "delete_cells", "ids": ["a", 1]}, "'ids' must be a list of cell ids"),
        ({"action": "delete_cells", "ids": None}, "'ids' must be a list of cell ids"),
        ({"action": "toggle_tags", "ids": ["a"], "tags": [1]}, "'tags' must be a list of tag"),
        ({"action": "set_cell_input", "id": "a", "input": 3}, "'input' must be a string"),
        ({"action": "insert_cell", "delta": 1, "id": 5}, "'id' must be a cell id"),
    ],
)
def test_parameters_are_checked_from_the_declared_types(body, message):
    with pytest.raises(InvalidActionError) as raised:
        parse_action(body)
    assert message in str(raised.value)


def test_a_well_formed_body_passes_with_optional_parameters_left_out_or_none():
    assert parse_action({"action": "insert_cell", "delta": -1}) == ("insert_cell", {"delta": -1})
    assert parse_action({"action": "clear_outputs", "ids": None}) == (
        "clear_outputs",
        {"ids": None},
    )
    assert parse_action({"action": "toggle_tags", "ids": ["a"], "tags": ["t"]})[0] == "toggle_tags"
    assert parse_action({"action": "run_all"}) == ("run_all", {})
