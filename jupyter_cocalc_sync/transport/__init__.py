"""The y-websocket protocol and ``Room``: peers, updates, awareness (what a room is, not which
rooms exist: ``rooms/``)."""
