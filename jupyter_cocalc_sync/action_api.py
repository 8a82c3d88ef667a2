"""The notebook actions, declared once: names, parameters, types, what each does.

``NotebookActionsAPI`` is the one list. Everything else is derived from its method signatures
and type hints (``inspect``):

* the server's ``NotebookActions`` (actions/notebook.py) subclasses it, so mypy checks every
  implementation against its declaration;
* ``POST …/actions`` checks a body's parameters with ``parse_action`` before the notebook is
  touched (unknown actions, unknown or missing parameters, wrong JSON types); what needs the
  table (does the cell exist, is the cursor inside the input) is checked by the action itself;
* the Python client's methods are generated from ``ACTIONS`` (client/actions.py);
* the documentation's table of actions is read from it (``{notebook-actions}``).

This module imports nothing of the server: the client imports it where jupyter_server is not
installed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NewType, Protocol, TypeVar, get_args, get_origin, get_type_hints

from .errors import InvalidActionError

#: a cell's id (a non-empty string)
CellId = NewType("CellId", str)
#: a tag of a cell's metadata (a string; ``toggle_tags`` refuses an empty or blank one)
TagName = NewType("TagName", str)
#: the JSON answer of an action: ``{"version": …}`` and, by action, ``"id"``, ``"queued"``…
Reply = dict[str, Any]

F = TypeVar("F", bound=Callable[..., Any])


def runs_code(method: F) -> F:
    """Marks an action that runs code or starts a kernel: authorized like runs, not edits."""
    method.__dict__["runs_code"] = True
    return method


def replies(field: str | None) -> Callable[[F], F]:
    """The field of the reply a script wants back (``"version"`` unless said otherwise)."""

    def mark(method: F) -> F:
        method.__dict__["reply_field"] = field
        return method

    return mark


class NotebookActionsAPI(Protocol):
    """CoCalc's notebook actions on a live notebook; each one is one commit (one history
    entry). Run actions only queue cells; their outputs come later."""

    # -- editing ----------------------------------------------------------------------------

    @replies("id")
    async def insert_cell(
        self, delta: int, id: CellId | None = None, cell_type: str = "code", input: str = ""
    ) -> Reply:
        """A new cell below (``delta=1``) or above (``delta=-1``) the cell ``id`` — without
        ``id``, at the end or at the start. Returns ``{"id", "version"}``."""
        ...

    async def delete_cells(self, ids: list[CellId]) -> Reply:
        """Delete the cells (a queued one leaves the queue, a running one is interrupted)."""
        ...

    async def move_cell(self, id: CellId, delta: int) -> Reply:
        """Move the cell ``delta`` places down (up if negative), stopping at either end."""
        ...

    @replies("id")
    async def merge_cells(self, ids: list[CellId]) -> Reply:
        """Merge the cells into the first of them (in notebook order): inputs joined with
        newlines, outputs one after the other, attachments together; the others deleted.
        Returns ``{"id", "version"}``."""
        ...

    @replies("id")
    async def split_cell(self, id: CellId, cursor: int) -> Reply:
        """Split the cell's input at ``cursor`` (counted in characters — code points, so a
        cursor is never inside one): the text before stays (with the outputs), the text after
        goes to a new cell of the same type below. A line break at the cut is dropped, as
        when splitting at the start or end of a line in JupyterLab. Returns ``{"id",
        "version"}`` (``id``: the new cell)."""
        ...

    async def set_cell_type(self, id: CellId, cell_type: str) -> Reply:
        """Change the cell's type; a cell that is no longer code loses its outputs."""
        ...

    async def set_cell_input(self, id: CellId, input: str) -> Reply:
        """Replace the cell's input (written as the minimal text edit)."""
        ...

    async def clear_outputs(self, ids: list[CellId] | None = None) -> Reply:
        """Clear the outputs and execution counts of the cells (default: every cell). A cell
        that is running keeps its outputs: the runner is still writing them."""
        ...

    async def toggle_tags(self, ids: list[CellId], tags: list[TagName]) -> Reply:
        """For each cell, add each tag it lacks and remove each tag it has."""
        ...

    # -- running ----------------------------------------------------------------------------

    @replies(None)
    @runs_code
    async def set_kernel(self, name: str) -> Reply:
        """Switch the notebook to the kernelspec ``name`` (its session gets a new kernel)."""
        ...

    @replies("queued")
    @runs_code
    async def run_cells(self, ids: list[CellId]) -> Reply:
        """Queue the cells, in the order given. Returns ``{"queued": ids, "version"}``."""
        ...

    @replies("queued")
    @runs_code
    async def run_all(self) -> Reply:
        """Queue every cell, in notebook order. Returns ``{"queued": ids, "version"}``."""
        ...

    @replies("queued")
    @runs_code
    async def run_all_above(self, id: CellId) -> Reply:
        """Queue every cell above ``id`` (not ``id`` itself)."""
        ...

    @replies("queued")
    @runs_code
    async def run_all_below(self, id: CellId) -> Reply:
        """Queue ``id`` and every cell below it."""
        ...


# -- derived from the declaration ---------------------------------------------------------


@dataclass(frozen=True)
class ActionParam:
    """One parameter of an action, as its declaration types it."""

    name: str
    annotation: Any
    required: bool
    default: Any

    @property
    def description(self) -> str:
        return _describe(self.annotation)

    def accepts(self, value: Any) -> bool:
        return _accepts(self.annotation, value)


@dataclass(frozen=True)
class Action:
    """One declared action."""

    name: str
    params: tuple[ActionParam, ...]
    doc: str
    runs_code: bool
    #: the field of the reply a script wants back (None: nothing)
    reply_field: str | None
    signature: inspect.Signature

    def param(self, name: str) -> ActionParam | None:
        return next((p for p in self.params if p.name == name), None)


def _declared(cls: type) -> dict[str, Action]:
    actions: dict[str, Action] = {}
    for name, method in vars(cls).items():
        if name.startswith("_") or not inspect.iscoroutinefunction(method):
            continue
        hints = get_type_hints(method)
        signature = inspect.signature(method)
        params = tuple(
            ActionParam(
                p.name,
                hints[p.name],
                required=p.default is inspect.Parameter.empty,
                default=None if p.default is inspect.Parameter.empty else p.default,
            )
            for p in list(signature.parameters.values())[1:]  # (self)
        )
        actions[name] = Action(
            name,
            params,
            inspect.getdoc(method) or "",
            runs_code=bool(getattr(method, "runs_code", False)),
            reply_field=getattr(method, "reply_field", "version"),
            signature=signature,
        )
    return actions


#: the actions by name, in the order they are declared
ACTIONS: dict[str, Action] = _declared(NotebookActionsAPI)


def parse_action(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(action name, parameters)`` of a request body; ``InvalidActionError`` if malformed."""
    name = body.get("action")
    if not isinstance(name, str) or name not in ACTIONS:
        raise InvalidActionError(f'"action" must be one of {sorted(ACTIONS)}, got {name!r}')
    action = ACTIONS[name]
    params = {key: value for key, value in body.items() if key != "action"}
    declared = sorted(p.name for p in action.params)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise InvalidActionError(f"{name} takes {declared or 'no parameters'}, not {unknown}")
    missing = sorted(p.name for p in action.params if p.required and p.name not in params)
    if missing:
        raise InvalidActionError(f"{name} needs {missing}")
    for key, value in params.items():
        param = action.param(key)
        assert param is not None  # (unknown ones are refused above)
        if value is None and not param.required:
            continue
        if not param.accepts(value):
            raise InvalidActionError(f"{name}: {key!r} must be {param.description}")
    return name, params


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether the JSON ``value`` is of the declared type (the types declarations use)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, TagName):  # (the action refuses an empty or blank tag itself)
        return isinstance(value, str)
    if annotation is CellId:
        return isinstance(value, str) and bool(value)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_accepts(args[0], v) for v in value)
    if args and type(None) in args:  # X | None (None itself is taken before)
        return any(_accepts(a, value) for a in args if a is not type(None))
    raise TypeError(f"an action parameter of a type parse_action does not know: {annotation!r}")


def _describe(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is int:
        return "an integer"
    if annotation is str:
        return "a string"
    if annotation is CellId:
        return "a cell id"
    if annotation is TagName:
        return "a tag name"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return "a list of " + _plural(_describe(args[0]))
    if args and type(None) in args:
        return " or ".join(_describe(a) for a in args if a is not type(None))
    raise TypeError(f"an action parameter of a type parse_action does not know: {annotation!r}")


def _plural(description: str) -> str:
    return description.removeprefix("an ").removeprefix("a ") + "s"
