"""``python -m jupyter_cocalc_sync.demo``: the same as ``jupyter-cocalc-sync-demo``."""

from . import main

main()
