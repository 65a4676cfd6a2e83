"""The RepositoryHost port: a repository from the rendered skeleton, as one commit, protected and owned."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backend.errors import PolicyViolation
from backend.ownership import canonical_ref, ref_name
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
    mode: str | None = None  # "ruleset" or "classic"; None: a ruleset where the host offers them, else classic


@dataclass(frozen=True)
class RepositorySpec:
    """`owner_ref` is who owns the repository, kept as the canonical full entity ref; `owner_team` is the
    GitHub team slug that is granted access (the owner group's name)."""

    org: str
    name: str
    description: str
    visibility: str
    default_branch: str
    owner_team: str
    owner_ref: str
    team_permission: str
    topics: tuple[str, ...]
    protection: Protection
    commit_message: str
    skeleton: str
    collaborators: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "owner_ref", canonical_ref(self.owner_ref))


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
        on_change: Callable[[Change], object], fresh_name: bool = False,
        before_create: Callable[[], object] | None = None,
    ) -> RepositoryResult:
        """Create the repository with `files` as one commit, or converge its settings if it is ours.
        Another owner's repository is a ConflictError; so is content we did not create, unless `adopt` (then
        only the settings are applied). `fresh_name`: Golden Path never began creating this repository for this
        owner, so one already there, even an empty one, is not one a stopped run of ours left behind;
        `before_create` is called just before a repository is created (to record that it was begun). After
        applying, report the settings read back."""

    @abstractmethod
    def check_repository(self, org: str, name: str, *, owner_ref: str, fresh_name: bool = False) -> bool:
        """Read only: whether the repository exists and is ours to converge (False: the name is free). Another
        owner's repository, or one Golden Path did not create, is a ConflictError, as in ensure_repository."""


def owner_team_of(owner_ref: str) -> str:
    """The team an owner stands for. Only a group has one: a person (`user:`) cannot own a repository, because
    its access, CODEOWNERS and reviews go through a team. Refused before anything is read or written."""
    owner = canonical_ref(owner_ref)
    if not owner.startswith("group:"):
        raise PolicyViolation(f"owner {owner} is not a group: a repository is owned by a group, whose team is "
                              "granted access", rule="owner-must-be-group", field="owner")
    return ref_name(owner)


def recorded_owner(*, owner: object, team: object) -> str | None:
    """The owner an earlier run recorded, as a canonical ref (None: nothing recorded). Records from before full
    refs hold only the team: only a group could create a repository, so they name `group:default/<team>`."""
    if owner is None or owner == "":
        if team is None or team == "":
            return None
        owner = f"group:default/{team}"
    try:
        return canonical_ref(str(owner))
    except ValueError:
        return str(owner)  # unreadable: it names no one, so it is never taken for the wanted owner
