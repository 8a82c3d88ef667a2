"""Which room an id names, and joining it (above documents and execution: a notebook's rooms
are built with it)."""
