"""Rooms: the y-websocket protocol, ``Room``, rooms of plain files, and ``RoomRegistry``."""
