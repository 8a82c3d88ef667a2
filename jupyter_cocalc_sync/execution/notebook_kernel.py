"""``NotebookKernel``: the kernel a notebook's runner runs its cells on.

The notebook's session kernel (``SessionKernels``): found through the notebook's session, or
started with the kernel its settings name, and kept while it runs, so a run does not look the
session up. JupyterLab's server-side executor names the kernel it means: a run it asks for
prefers that kernel (``prefer``). The notebook's settings show what happens (``backend_state``
``starting``, ``running``, ``failed`` with ``kernel_error``, the kernel's name and spec), and
the notebook's widget table follows the kernel.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..kernels.kernel import JupyterKernel

if TYPE_CHECKING:
    from ..documents.notebook import NotebookDocument
    from ..widgets.session import NotebookWidgets
    from .cell_writes import CellWrites
    from .sessions import SessionKernels


class NotebookKernel:
    """The runner's kernel of one notebook (module docstring)."""

    def __init__(
        self,
        document: NotebookDocument,
        kernels: SessionKernels,
        writes: CellWrites,
        widgets: NotebookWidgets | None = None,
    ) -> None:
        self.document = document
        self.kernels = kernels
        self.writes = writes
        self.widgets = widgets
        #: the kernel the last run used (None: none yet, or the notebook's kernel changed)
        self.kernel: JupyterKernel | None = None
        #: the kernel id the next run prefers (JupyterLab's executor names its kernel)
        self.prefer: str | None = None
        self._lock = asyncio.Lock()

    async def session_kernel(self) -> JupyterKernel:
        """The notebook's kernel, started if needed (for completion, introspection, info)."""
        try:
            kernel = await self.get()
        except Exception as e:  # (noted in the notebook's settings, and re-raised)
            self.writes.set_settings(
                backend_state="failed", kernel_error=str(e) or type(e).__name__
            )
            raise
        finally:
            self.writes.commit()  # the backend state it set
        return kernel

    async def get(self) -> JupyterKernel:
        """The kernel for the next run, found or started (taking the preference)."""
        # one at a time: two callers finding no session would start two
        async with self._lock:
            return await self._find()

    def running(self) -> JupyterKernel | None:
        """The kernel of the last run when it runs (and is the one preferred, if any): the
        common case, no session lookup per run."""
        kernel, prefer = self.kernel, self.prefer
        if (
            kernel is not None
            and kernel.state == "running"
            and (prefer is None or prefer == kernel.kernel_id)
            and kernel.kernel_id is not None
            and kernel.kernel_id in self.kernels.kernel_manager
        ):
            self.writes.set_settings(backend_state="running", kernel_error=None)
            return kernel
        return None

    async def _find(self) -> JupyterKernel:
        kernel = self.running()
        prefer, self.prefer = self.prefer, None
        if kernel is not None:
            return kernel
        settings = self.document.settings()
        self.writes.set_settings(backend_state="starting")
        kernel = await self.kernels.kernel_for(self.document.path, settings.get("kernel"), prefer)
        if kernel is not self.kernel:
            self.kernel = kernel
            if self.widgets is not None:
                self.widgets.bridge.use_kernel(kernel)
            name = kernel.name
            if name and name != settings.get("kernel"):
                self.writes.set_settings(
                    kernel=name, metadata={"kernelspec": self.kernels.kernelspec(name)}
                )
        if kernel.state != "running":
            await kernel.spawn()  # connects, or waits out a restart in progress
        self.writes.set_settings(backend_state="running", kernel_error=None)
        return kernel
