"""What a connected client may do beyond reading: decided once, when it connects.

A room peer's ``Origin`` carries its ``Permissions``; the room drops document updates from a
peer that may not write, and the runner ignores run requests (a cell's ``state`` set to
``"start"``) from a change whose origin may not execute. Changes made by the server itself
(REST calls that were authorized before they got here, the file, the store) have ``FULL``
permissions and are never refused.
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
