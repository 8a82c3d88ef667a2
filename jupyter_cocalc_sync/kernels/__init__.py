"""Kernels: the ``JupyterKernel`` wrapper (channels, comms, processes, gateways) and the kernel
websockets (``manager`` and ``websocket`` re-export ``pool/`` under older paths)."""
