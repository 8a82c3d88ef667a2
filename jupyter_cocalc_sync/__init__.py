"""jupyter-cocalc-sync: CoCalc's notebook backend for stock Jupyter.

The public Python API is what this module exports; everything else is internal. Importing it
loads neither the server (jupyter_server, tornado) nor the kernel machinery: ``CocalcSync``,
``SyncDB`` and ``kernel`` are imported when first used, so ``jupyter_cocalc_sync.client`` stays
a light import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .app import CocalcSync
    from .kernels.kernel import JupyterKernel
    from .sync import SyncDB

__all__ = [
    "CocalcSync",
    "SyncDB",
    "__version__",
    "_jupyter_server_extension_points",
    "kernel",
]

#: attribute -> the module it is imported from, on first access
_LAZY = {"CocalcSync": ".app", "SyncDB": ".sync"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """jupyter_server's hook: the extension app, imported when the server loads extensions."""
    from .app import CocalcSync

    return [{"module": "jupyter_cocalc_sync", "app": CocalcSync}]


def kernel(name: str = "python3", path: str | None = None, **kwargs: Any) -> JupyterKernel:
    """A standalone ``JupyterKernel`` for ``name``, working in the folder of ``path``."""
    from .kernels.kernel import kernel as _kernel

    return _kernel(name=name, path=path, **kwargs)
