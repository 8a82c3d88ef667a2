"""The kernel pool: pre-started kernels, how they are filled and claimed, and the pool-aware
kernel manager and kernel websocket that jupyter_server uses."""
