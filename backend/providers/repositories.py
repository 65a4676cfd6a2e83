"""The RepositoryHost port: a repository from the rendered skeleton, as one commit, protected and owned."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backend.providers.changes import Change


@dataclass(frozen=True)
class Protection:
    required_approving_reviews: int = 1
    require_code_owner_reviews: bool = True
    dismiss_stale_reviews: bool = True
    required_status_checks: tuple[str, ...] = ()
    enforce_admins: bool = True
    required_linear_history: bool = False
    required_conversation_resolution: bool = True


@dataclass(frozen=True)
class RepositorySpec:
    org: str
    name: str
    description: str
    visibility: str
    default_branch: str
    owner_team: str
    team_permission: str
    topics: tuple[str, ...]
    protection: Protection
    commit_message: str
    skeleton: str
    collaborators: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RepositoryResult:
    remote_url: str
    contents_url: str
    commit_hash: str
    settings: dict[str, Any] = field(default_factory=dict)
    writes: int = 0


class RepositoryHost(ABC):
    kind: str

    @abstractmethod
    def ensure_repository(
        self, spec: RepositorySpec, files: dict[str, bytes], *, adopt: bool, dry_run: bool,
        on_change: Callable[[Change], object],
    ) -> RepositoryResult:
        """Create the repository with `files` as one commit, or converge its settings if it is ours.
        Another team's repository, or content we did not create, is a ConflictError unless `adopt`
        (then only the settings are applied). After applying, report the settings read back."""

    @abstractmethod
    def check_repository(self, org: str, name: str, *, owner_team: str) -> bool:
        """Read only: whether the repository exists and is ours to converge (False: the name is free). Another
        team's repository, or one Golden Path did not create, is a ConflictError, as in ensure_repository."""
