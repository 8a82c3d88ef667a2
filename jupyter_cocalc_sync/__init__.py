"""jupyter-cocalc-sync: CoCalc's notebook backend for stock Jupyter.

The public Python API is what this module exports; everything else is internal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .app import CocalcSync, _jupyter_server_extension_points
from .sync import SyncDB

if TYPE_CHECKING:
    from .kernels.kernel import JupyterKernel

__all__ = [
    "CocalcSync",
    "SyncDB",
    "__version__",
    "_jupyter_server_extension_points",
    "kernel",
]


def kernel(name: str = "python3", path: str | None = None, **kwargs: Any) -> JupyterKernel:
    """A standalone ``JupyterKernel`` for ``name``, working in the folder of ``path``."""
    from .kernels.kernel import kernel as _kernel

    return _kernel(name=name, path=path, **kwargs)
