"""Kernels: the ``JupyterKernel`` wrapper, the kernel pool and the pool-aware kernel manager."""
