"""ipywidgets: the widget table of each notebook, its room, its kernel bridge, its saved state."""
