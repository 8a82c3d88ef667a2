"""``ExecuteRequest``: the body of ``POST /api/cocalc-sync/execute``, checked, and its cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidRequestError

FIELDS = frozenset({"kernel", "code", "history", "path", "timeout_ms", "max_output", "no_cache"})


@dataclass(frozen=True)
class ExecuteRequest:
    """One stateless run: ``history`` runs first (output dropped), then ``code``."""

    kernel: str
    code: str
    history: tuple[str, ...] = ()
    #: an API path inside the server root (checked by the caller); its folder is the cwd
    path: str | None = None
    timeout_ms: float | None = None
    max_output: int | None = None
    no_cache: bool = False

    @classmethod
    def from_json(cls, body: dict[str, Any], *, default_kernel: str) -> ExecuteRequest:
        """Check a request body; ``InvalidRequestError`` names the first bad field."""
        unknown = set(body) - FIELDS
        if unknown:
            raise InvalidRequestError(f"unknown fields {sorted(unknown)}; known: {sorted(FIELDS)}")
        code = body.get("code")
        if not isinstance(code, str):
            raise InvalidRequestError('"code" (a string) is required')
        kernel = body.get("kernel") or default_kernel
        if not isinstance(kernel, str):
            raise InvalidRequestError('"kernel" must be a kernelspec name')
        history = body.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
            raise InvalidRequestError('"history" must be a list of strings')
        path = body.get("path")
        if path is not None and (not isinstance(path, str) or not path):
            raise InvalidRequestError('"path" must be an API path or null')
        timeout_ms = body.get("timeout_ms")
        if timeout_ms is not None and (not _is_number(timeout_ms) or timeout_ms <= 0):
            raise InvalidRequestError('"timeout_ms" must be a positive number')
        max_output = body.get("max_output")
        if max_output is not None and (not _is_int(max_output) or max_output < 1):
            raise InvalidRequestError('"max_output" must be a positive integer (characters)')
        no_cache = body.get("no_cache", False)
        if not isinstance(no_cache, bool):
            raise InvalidRequestError('"no_cache" must be a boolean')
        return cls(kernel, code, tuple(history), path, timeout_ms, max_output, no_cache)

    def with_path(self, path: str) -> ExecuteRequest:
        """This request with its path normalised (as the caller checked it)."""
        return replace(self, path=path)

    def cache_key(self, max_output: int) -> str:
        """SHA1 of kernel, code, history and path — and of the output limit, since the same
        code truncated at another length is another result."""
        identity = [self.kernel, self.code, list(self.history), self.path, max_output]
        canonical = json.dumps(identity, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha1(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ExecuteResult:
    outputs: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "cached": self.cached}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
