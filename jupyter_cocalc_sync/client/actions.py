"""Notebook actions on the Python client: each one ``POST …/actions``, one commit on the server.

The methods are made from the one declaration of the actions (``action_api.ACTIONS``): same
names, parameters, defaults and docs as the server's. Each returns the field of the server's
answer its declaration names (the new cell's ``id``, the ``version``, the ``queued`` ids), once
the server has committed the action and this replica has received it (``LiveNotebook.sync``),
so ``nb.get_one(...)`` right after shows the result.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..action_api import ACTIONS, Action
from .errors import ServerError

if TYPE_CHECKING:
    from .client import CocalcSyncClient

#: the fields an action's answer may be asked for, and what each must be
_REPLY_FIELDS: dict[str, Callable[[Any], bool]] = {
    "id": lambda value: isinstance(value, str),
    "version": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "queued": lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value),
}


class NotebookActionsMixin:
    """The actions of ``LiveNotebook``: one method per declared action (``action_api.py``)."""

    if TYPE_CHECKING:
        client: CocalcSyncClient

        def _url(self, suffix: str) -> str: ...

        async def sync(self) -> None: ...

        # the methods made from the declaration, as a type checker sees them
        def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]: ...

    async def action(self, name: str, /, **params: Any) -> dict[str, Any]:
        """Perform the action ``name`` with ``params``; returns the server's answer
        (``{"version", …}``); ``ServerError`` (400) for bad parameters, nothing changed."""
        body = {"action": name, **params}
        reply = await self.client.request_json("POST", self._url("/actions"), body)
        await self.sync()
        return reply


def reply_field(reply: dict[str, Any], name: str) -> Any:
    """``reply[name]``, checked to be what that field holds."""
    value = reply.get(name)
    if not _REPLY_FIELDS[name](value):
        raise ServerError(502, f"the server's answer has no valid {name!r}: {reply}")
    return value


def _method(action: Action) -> Callable[..., Coroutine[Any, Any, Any]]:
    signature = action.signature.replace(return_annotation=inspect.Signature.empty)

    async def perform(self: NotebookActionsMixin, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        params = dict(bound.arguments)
        del params["self"]
        reply = await self.action(action.name, **params)
        return None if action.reply_field is None else reply_field(reply, action.reply_field)

    perform.__name__ = action.name
    perform.__qualname__ = f"{NotebookActionsMixin.__name__}.{action.name}"
    perform.__doc__ = action.doc
    perform.__signature__ = signature  # type: ignore[attr-defined]
    return perform


for _action in ACTIONS.values():
    setattr(NotebookActionsMixin, _action.name, _method(_action))
