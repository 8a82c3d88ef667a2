"""A notebook action called by name with JSON parameters: the body of ``POST …/actions``.

``{"action": "split_cell", "id": "a1b2", "cursor": 12}`` calls
``NotebookActions.split_cell(id="a1b2", cursor=12)``: the parameters are the method's, by
name, as ``NotebookActionsAPI`` declares them (action_api.py, where ``parse_action`` checks
them before the notebook is touched).
"""

from __future__ import annotations

from typing import Any

from ..action_api import ACTIONS, parse_action
from .notebook import NotebookActions

__all__ = ["RUN_ACTIONS", "parse_action", "perform"]

#: actions that run code (or start a kernel): authorized like runs, not like edits
RUN_ACTIONS = frozenset(name for name, action in ACTIONS.items() if action.runs_code)


async def perform(actions: NotebookActions, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Call the action ``name`` (parsed by ``parse_action``); returns its JSON result."""
    method = getattr(actions, name)
    result: dict[str, Any] = await method(**params)
    return result
