"""The room registry: which room an id names, and joining it (above documents and execution,
whose rooms it hands out)."""
