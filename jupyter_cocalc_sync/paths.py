"""API paths: what a request may name (relative, inside the server root, no tricks)."""

from __future__ import annotations

import os

from .errors import PathOutsideRootError


def check_api_path(root_dir: str, path: str) -> str:
    """Normalise an API path and make sure it stays inside ``root_dir``.

    Refuses absolute paths, ``..`` components (also when they arrived URL-encoded: tornado
    decodes path arguments before we see them), NUL bytes, and paths that leave the root
    through a symbolic link. Returns the path with ``/`` separators and no leading slash.
    """
    if "\x00" in path or "\\" in path:
        raise PathOutsideRootError(f"invalid character in path {path!r}")
    if path.startswith("/") or os.path.isabs(path) or (len(path) > 1 and path[1] == ":"):
        raise PathOutsideRootError(f"absolute paths are not allowed: {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise PathOutsideRootError(f"path leaves the server root: {path!r}")
    if not parts:
        raise PathOutsideRootError("empty path")
    api_path = "/".join(parts)
    root = os.path.realpath(root_dir)
    real = os.path.realpath(os.path.join(root, *parts))
    if real != root and not real.startswith(root + os.sep):
        raise PathOutsideRootError(f"path leaves the server root through a link: {path!r}")
    return api_path
