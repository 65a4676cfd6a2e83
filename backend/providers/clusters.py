"""The ClusterTarget port: converge a tenant namespace's manifests on one cluster (direct API or GitOps).

Both adapters follow the same rules (backend.providers.manifests): validate everything first, refuse a
namespace another team or tool owns, write only what differs, leave provenance as it was created.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from backend.providers.changes import Change


@dataclass(frozen=True)
class TenantResult:
    changes: list[Change]
    commit: str | None = None
    diff: str = ""
    writes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ClusterTarget(ABC):
    name: str
    mode: str

    @abstractmethod
    def ensure_tenant(
        self, manifests: list[dict[str, Any]], *, owner_ref: str, message: str, dry_run: bool,
        on_change: Callable[[Change], object],
    ) -> TenantResult:
        """Converge every manifest (the Namespace first). Raises ConflictError for a foreign namespace.
        `on_change` hears of each change as soon as it is in force, so a failure half-way still leaves
        evidence of what was done."""

    @contextmanager
    def batched_reads(self) -> Iterator[None]:
        """Within it, this thread reads the cluster in bulk (a conformance pass over every service): a target that
        can answer many reads with few calls does so here; the default reads one object at a time."""
        yield

    @abstractmethod
    def check_namespace(self, namespace: str, *, owner_ref: str) -> bool:
        """Read only: whether the namespace exists and is ours to converge (False: free). A namespace another
        team owns, or that Golden Path does not manage, is a ConflictError, as in ensure_tenant."""
