"""Secret redaction for everything we log or store: known secret values become '***'."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 4


class Redactor:
    """Holds secret values (tokens, secret inputs) and scrubs them out of text and JSON data."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        fresh = {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH}
        with self._lock:
            self._values = self._values | fresh

    def child(self, values: Iterable[str]) -> Redactor:
        return Redactor([*self._values, *values])

    def text(self, value: str) -> str:
        for secret in sorted(self._values, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
