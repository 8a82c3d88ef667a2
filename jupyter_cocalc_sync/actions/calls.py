"""A notebook action called by name with JSON parameters: the body of ``POST …/actions``.

``{"action": "split_cell", "id": "a1b2", "cursor": 12}`` calls
``NotebookActions.split_cell(id="a1b2", cursor=12)``: the parameters are the method's, by
name. Unknown actions, unknown or missing parameters and parameters of the wrong JSON type
are refused here, before the notebook is touched; what needs the table (does the cell
exist, is the cursor inside the input) is checked by the action itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidActionError
from ..origin import Origin
from .notebook import NotebookActions


@dataclass(frozen=True)
class Param:
    check: Callable[[Any], bool]
    description: str
    required: bool = True

    def optional(self) -> Param:
        return Param(self.check, self.description, required=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


INTEGER = Param(_is_int, "an integer")
STRING = Param(lambda v: isinstance(v, str), "a string")
CELL_ID = Param(lambda v: isinstance(v, str) and bool(v), "a cell id")
CELL_IDS = Param(_is_str_list, "a list of cell ids")

#: action -> its parameters (as the methods of ``NotebookActions`` name them)
ACTIONS: dict[str, dict[str, Param]] = {
    "insert_cell": {
        "delta": INTEGER,
        "id": CELL_ID.optional(),
        "cell_type": STRING.optional(),
        "input": STRING.optional(),
    },
    "delete_cells": {"ids": CELL_IDS},
    "move_cell": {"id": CELL_ID, "delta": INTEGER},
    "merge_cells": {"ids": CELL_IDS},
    "split_cell": {"id": CELL_ID, "cursor": INTEGER},
    "set_cell_type": {"id": CELL_ID, "cell_type": STRING},
    "set_cell_input": {"id": CELL_ID, "input": STRING},
    "clear_outputs": {"ids": CELL_IDS.optional()},
    "toggle_tags": {"ids": CELL_IDS, "tags": Param(_is_str_list, "a list of tag names")},
    "set_kernel": {"name": STRING},
    "run_cells": {"ids": CELL_IDS},
    "run_all": {},
    "run_all_above": {"id": CELL_ID},
    "run_all_below": {"id": CELL_ID},
}

#: actions that run code (or start a kernel): authorized like runs, not like edits
RUN_ACTIONS = frozenset({"set_kernel", "run_cells", "run_all", "run_all_above", "run_all_below"})


def parse_action(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(action name, parameters)`` of a request body; ``InvalidActionError`` if malformed."""
    name = body.get("action")
    if not isinstance(name, str) or name not in ACTIONS:
        raise InvalidActionError(f'"action" must be one of {sorted(ACTIONS)}, got {name!r}')
    spec = ACTIONS[name]
    params = {key: value for key, value in body.items() if key != "action"}
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise InvalidActionError(f"{name} takes {sorted(spec) or 'no parameters'}, not {unknown}")
    missing = sorted(key for key, param in spec.items() if param.required and key not in params)
    if missing:
        raise InvalidActionError(f"{name} needs {missing}")
    for key, value in params.items():
        param = spec[key]
        if value is None and not param.required:
            continue
        if not param.check(value):
            raise InvalidActionError(f"{name}: {key!r} must be {param.description}")
    return name, params


async def perform(
    actions: NotebookActions, name: str, params: dict[str, Any], *, origin: Origin
) -> dict[str, Any]:
    """Call the action ``name`` (parsed by ``parse_action``); returns its JSON result."""
    method = getattr(actions, name)
    result: dict[str, Any] = await method(**params, origin=origin)
    return result
