"""What the emulator knows about organizations and repositories."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.github_emulator.gitobjects import ObjectStore


@dataclass
class Repo:
    id: int
    org: str
    name: str
    description: str
    visibility: str
    default_branch: str = "main"
    has_wiki: bool = True
    delete_branch_on_merge: bool = False
    topics: list[str] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" -> commit sha
    objects: ObjectStore = field(default_factory=ObjectStore)
    protection: dict[str, dict[str, Any]] = field(default_factory=dict)
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> role
    invitations: dict[str, str] = field(default_factory=dict)
    rulesets: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> the ruleset's JSON

    @property
    def empty(self) -> bool:
        return not self.refs

    @property
    def full_name(self) -> str:
        return f"{self.org}/{self.name}"


@dataclass
class Org:
    login: str
    id: int
    teams: dict[str, int] = field(default_factory=dict)  # slug -> id
    team_repos: dict[str, dict[str, str]] = field(default_factory=dict)  # slug -> {repo name: permission}
    team_parent: dict[str, str | None] = field(default_factory=dict)  # slug -> parent slug
    team_members: dict[str, set[str]] = field(default_factory=dict)  # slug -> logins
    members: set[str] = field(default_factory=set)
    base_permission: str = "none"  # none | read | write | admin: what every member may do on every repository
