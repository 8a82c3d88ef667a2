"""Errors that users of this package catch, each with a message that says what to do."""

from __future__ import annotations


class CocalcSyncError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidRecordError(CocalcSyncError, ValueError):
    """A record given to ``SyncDB.set``/``delete`` is malformed; nothing was written."""


class ExportFormatError(CocalcSyncError, ValueError):
    """No exporter of that name (the message lists the formats there are)."""


class ExportToolMissingError(ExportFormatError):
    """The format needs a program this server does not have (the message names it)."""


class NotebookFormatError(CocalcSyncError, ValueError):
    """A notebook file could not be read: the message names the problem and where it is."""


class DocumentNotFoundError(CocalcSyncError, LookupError):
    """No notebook at that path (or file id)."""


class PathOutsideRootError(CocalcSyncError, PermissionError):
    """A path leaves the server root (``..``, an absolute path, or a link out of the root)."""


class VersionNotFoundError(CocalcSyncError, LookupError):
    """No such version in a notebook's history."""


class KernelError(CocalcSyncError, RuntimeError):
    """A kernel could not be started or died; the message says which and why."""


class ExecutionTimeoutError(CocalcSyncError, TimeoutError):
    """Code ran past its time limit."""


class InvalidRequestError(CocalcSyncError, ValueError):
    """A request body is malformed (the message names the field); nothing was done."""


class KernelNotFoundError(CocalcSyncError, LookupError):
    """No kernelspec of that name is installed (the message lists those that are)."""


class TooManyExecutionsError(CocalcSyncError, RuntimeError):
    """The server runs as many stateless executions as it allows; retry after ``retry_after``
    seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AssignmentError(CocalcSyncError, ValueError):
    """A notebook is not a valid nbgrader assignment (the message names the cell and why)."""


class TargetExistsError(CocalcSyncError, FileExistsError):
    """A file would be overwritten; choose another target path or delete that file first."""


class StoreInUseError(CocalcSyncError, RuntimeError):
    """Another server writes to this store; each server needs its own ``store_path``."""


class StoreLocationError(CocalcSyncError, RuntimeError):
    """The store cannot run where it is (file locks fail, or a network filesystem the operator
    refused); the message says what was found and what to choose instead."""


class StoreUnavailableError(CocalcSyncError, RuntimeError):
    """The change log cannot be written (disk full, read-only): changes are refused until it
    can; nothing already saved is lost and the document recovers by itself."""


class StoreClosedError(StoreUnavailableError):
    """The store was closed: the server is stopping (what asks for the store then is told it is
    unavailable, as while it cannot be written: a request is answered 503, not 500)."""


class InternalCrashError(CocalcSyncError, RuntimeError):
    """A library crashed (a Rust panic inside pycrdt) while handling a request: a server bug,
    answered as a 500 and logged with the request's id."""


class InvalidActionError(CocalcSyncError, ValueError):
    """A notebook action with a bad name or bad parameters (no such cell, a cursor past the
    end…); nothing was changed."""
