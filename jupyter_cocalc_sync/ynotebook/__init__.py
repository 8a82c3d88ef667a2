"""The YNotebook projection for JupyterLab: table → YNotebook (``writer``), YNotebook → table
(``reader``), what both share, and the checks of a peer's update."""
