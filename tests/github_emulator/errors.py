"""The error answer the emulator's operations raise."""

from __future__ import annotations

from typing import Any


class GitHubError(Exception):
    """An error answer. `undeclared`: GitHub sends it although the description does not list that status for
    the operation; it is then checked against GitHub's basic-error shape instead."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None, *,
                 undeclared: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.errors, self.undeclared = status, message, errors, undeclared
