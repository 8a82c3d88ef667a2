"""What a connected client may do beyond reading: decided once, when it connects.

A room peer carries its ``Permissions``; the room drops document updates from a peer that may
not write, and the runner ignores run requests (a cell's ``state`` set to ``"start"``) from a
peer that may not execute. Changes made by the server itself (REST calls that were authorized
before they got here, the file, the store) carry no permissions and are never refused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permissions:
    write: bool = True
    execute: bool = True


#: a client with every right (and the server's own changes)
FULL = Permissions()
READ_ONLY = Permissions(write=False, execute=False)


def permissions_of(origin: object) -> Permissions:
    """The permissions of a change's origin (a peer; any ``sync.events.ChangeOrigin``),
    ``FULL`` for the server's own."""
    permissions = getattr(origin, "permissions", None)
    return permissions if isinstance(permissions, Permissions) else FULL
