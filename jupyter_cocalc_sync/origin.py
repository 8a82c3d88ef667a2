"""``Origin``: who made a change, as one typed value passed along with the change.

Every change of a notebook's table or YNotebook is made with an origin given as an argument
(``SyncDB.set(record, origin)``, ``SyncDB.commit(origin)``, ``apply_update(update, origin)``,
``LoggedTable.commit(origin)``, the runner's writes, the REST ``apply``/``revert``, the
actions). Listeners get it with the change: the runner reads its permissions (may it ask for
a run?), the change log its ``author`` (the history's author column, derived here and nowhere
else), a room its ``connection`` (it does not send a peer's own update back to it).

A room peer *has* an origin (``Origin.of_peer``): one per connection, so two tabs of one user
are two origins.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum

from .permissions import FULL, Permissions


class OriginKind(Enum):
    """Where a change comes from."""

    #: a user: a room peer (JupyterLab, a SyncDB client) or a REST caller
    USER = "user"
    #: the server running cells for a user (outputs, run states)
    RUNNER = "runner"
    #: the notebook's file: the import of a new notebook, a merge of an edit made on disk
    FILE = "file"
    #: the change log replayed into a table (never logged again)
    STORE = "store"
    #: the server's own changes that no user asked for (kernel state, repairs, widgets)
    SERVER = "server"
    #: an in-server extension calling the Python API
    EXTENSION = "extension"


#: the history's author of the changes of a kind that names no user
_KIND_AUTHORS: dict[OriginKind, str] = {OriginKind.FILE: "file"}

_connections = itertools.count(1)


@dataclass(frozen=True)
class Origin:
    """Who made a change (module docstring)."""

    kind: OriginKind
    #: the user the change is made by or for (its identity as the history records it)
    user: str | None = None
    #: what the change may do: a user's run request is refused without ``execute``
    permissions: Permissions = FULL
    #: the room connection a peer's change came through (None: not a room peer's)
    connection: int | None = None

    @classmethod
    def of_user(cls, user: str | None, permissions: Permissions = FULL) -> Origin:
        """A user's change made through the REST API (authorized before it gets here)."""
        return cls(OriginKind.USER, user, permissions)

    @classmethod
    def of_peer(
        cls, user: str | None, permissions: Permissions, kind: OriginKind = OriginKind.USER
    ) -> Origin:
        """The origin of one room connection's changes (a new one for every connection; an
        in-server extension's replica is a connection of kind ``EXTENSION``)."""
        return cls(kind, user, permissions, next(_connections))

    def running_for(self) -> Origin:
        """The runner's writes for a run this origin asked for (recorded under its user)."""
        return Origin(OriginKind.RUNNER, self.user)

    @property
    def author(self) -> str | None:
        """The history's author column for a change of this origin."""
        if self.user is not None:
            return self.user
        return _KIND_AUTHORS.get(self.kind)


#: the server's own changes
SERVER = Origin(OriginKind.SERVER)
#: the runner's writes no user asked for (stale states reset at open, kernel state)
RUNNER = Origin(OriginKind.RUNNER)
#: a notebook imported from its file, or an edit made on disk merged in
FILE = Origin(OriginKind.FILE)
#: updates replayed from the change log
STORE = Origin(OriginKind.STORE)
#: an in-server extension using the Python API
EXTENSION = Origin(OriginKind.EXTENSION)
