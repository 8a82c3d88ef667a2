"""``POST …/notebooks/{path}/actions``: a notebook action by name, as one commit."""

from __future__ import annotations

from tornado import web

from ..actions.calls import RUN_ACTIONS, parse_action, perform
from ..actions.notebook import NotebookActions
from .authorization import READ_DOCUMENT, check_action, requires
from .notebooks import NOTEBOOK, NotebookHandlerBase


class ActionsHandler(NotebookHandlerBase):
    """``{"action": name, …parameters}`` → the action's result (``{"version", …}``). Edit
    actions need ``contents:write``, run actions ``kernels:execute``."""

    @web.authenticated
    @requires(READ_DOCUMENT)
    async def post(self, path: str) -> None:
        name, params = parse_action(self.json_body())
        await check_action(self, runs_code=name in RUN_ACTIONS)
        runner = await self.services.execution.runner(self.api_path(path))
        actions = NotebookActions(
            runner.document,
            self.origin,
            runner,
            kernel_names=self.kernel_spec_manager.find_kernel_specs,
        )
        self.finish_json(await perform(actions, name, params))


def action_routes() -> list[tuple[str, type]]:
    return [(NOTEBOOK + r"/actions", ActionsHandler)]
