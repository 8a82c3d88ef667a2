"""``GET /api/cocalc-sync/kernels``: the kernelspecs (as ``/api/kernelspecs``) and pool status."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from jupyter_server.services.kernelspecs.handlers import is_kernelspec_model, kernelspec_model
from tornado import web

from .authorization import LIST_KERNELS, requires
from .base import CocalcAPIHandler


class KernelspecsHandler(CocalcAPIHandler):
    """Which kernels can be started, which is the default, and how the pool is doing.

    ``pool`` is null when the server's kernel manager is not the pooling one;
    ``stateless_pool`` counts the kernels kept for ``POST /api/cocalc-sync/execute``.
    """

    @web.authenticated
    @requires(LIST_KERNELS)
    async def get(self) -> None:
        km = self.kernel_manager
        pool_status = getattr(km, "pool_status", None)
        self.finish_json(
            {
                "kernelspecs": await self._kernelspec_models(),
                "default": km.default_kernel_name,
                "pool": pool_status() if callable(pool_status) else None,
                "stateless_pool": self.services.stateless.pool.status(),
            }
        )

    async def _kernelspec_models(self) -> dict[str, Any]:
        """The same models as jupyter_server's ``/api/kernelspecs``, read off the event loop."""
        ksm = self.kernel_spec_manager
        if inspect.iscoroutinefunction(ksm.get_all_specs):  # e.g. a gateway's manager
            specs = await ksm.get_all_specs()
        else:
            specs = await asyncio.to_thread(ksm.get_all_specs)
        models: dict[str, Any] = {}
        for name, info in specs.items():
            if is_kernelspec_model(info):
                models[name] = info
            elif info.get("spec") is not None and info.get("resource_dir") is not None:
                models[name] = await asyncio.to_thread(
                    kernelspec_model, self, name, info["spec"], info["resource_dir"]
                )
            else:
                self.log.error("Kernel spec %r is incomplete; left out", name)
        return models
