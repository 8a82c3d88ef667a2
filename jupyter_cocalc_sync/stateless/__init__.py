"""Stateless execution: one-off code in a fresh kernel, results cached in the store."""

from .request import ExecuteRequest, ExecuteResult
from .service import StatelessExecutor

__all__ = ["ExecuteRequest", "ExecuteResult", "StatelessExecutor"]
