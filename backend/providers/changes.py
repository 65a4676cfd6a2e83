"""What an ensure_* call did (or, in a dry-run, would do) to one external object."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Change:
    kind: str
    locator: str
    outcome: Outcome
    fields: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_write(self) -> bool:
        return self.outcome is not Outcome.UNCHANGED

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "locator": self.locator, "outcome": self.outcome.value}
        if self.fields:
            data["fields"] = list(self.fields)
        if self.details:
            data["details"] = self.details
        return data
