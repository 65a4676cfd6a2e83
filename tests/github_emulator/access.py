"""Who may do what on a repository, as GitHub works it out: direct grants, team grants (a team inherits its
ancestors' grants), and the organization's base permission; a person's role is the highest of them all."""

from __future__ import annotations

from collections.abc import Iterable

from tests.github_emulator.state import Org, Repo

ROLE_ORDER = ("none", "read", "triage", "write", "maintain", "admin")
ROLES = {"pull": "read", "triage": "triage", "push": "write", "maintain": "maintain", "admin": "admin"}
TEAM_PERMISSION = {role: legacy for legacy, role in ROLES.items()}  # role -> a team's legacy permission name
LEGACY_PERMISSION = {"read": "read", "triage": "read", "write": "write", "maintain": "write", "admin": "admin"}
BASE_ROLES = {"none": "none", "read": "read", "write": "write", "admin": "admin"}
WRITE_ROLES = {"write", "maintain", "admin"}
AFFILIATIONS = {"direct", "all", "outside"}


def highest(roles: Iterable[str]) -> str:
    return max(roles, key=ROLE_ORDER.index, default="none")


def permission_flags(role: str) -> dict[str, bool]:
    rank = ROLE_ORDER.index(role)
    return {"pull": rank >= ROLE_ORDER.index("read"), "triage": rank >= ROLE_ORDER.index("triage"),
            "push": rank >= ROLE_ORDER.index("write"), "maintain": rank >= ROLE_ORDER.index("maintain"),
            "admin": role == "admin"}


def team_lineage(org: Org, slug: str) -> list[str]:
    """The team, then its parent, its parent's parent, and so on."""
    lineage: list[str] = []
    current: str | None = slug
    while current is not None and current not in lineage:
        lineage.append(current)
        current = org.team_parent.get(current)
    return lineage


def direct_team_role(org: Org, slug: str, repo_name: str) -> str:
    permission = org.team_repos.get(slug, {}).get(repo_name)
    return "none" if permission is None else ROLES.get(permission, "none")


def team_role(org: Org, slug: str, repo_name: str) -> str:
    """A team's effective role: its own grant or one inherited from an ancestor, whichever is highest."""
    return highest(direct_team_role(org, ancestor, repo_name) for ancestor in team_lineage(org, slug))


def user_role(org: Org, repo: Repo, login: str) -> str:
    """A person's highest role from any grant: direct, through any of their teams, or the base permission."""
    roles = [repo.collaborators.get(login, "none")]
    if login in org.members:
        roles.append(BASE_ROLES[org.base_permission])
        roles.extend(team_role(org, slug, repo.name) for slug, members in org.team_members.items()
                     if login in members)
    return highest(roles)


def collaborators(org: Org, repo: Repo, affiliation: str) -> list[tuple[str, str]]:
    """(login, highest role) of the people GET /repos/{owner}/{repo}/collaborators lists, by login."""
    direct = set(repo.collaborators)
    if affiliation == "direct":
        listed = direct
    elif affiliation == "outside":
        listed = direct - org.members
    else:
        listed = direct | {member for member in org.members if user_role(org, repo, member) != "none"}
    return [(login, user_role(org, repo, login)) for login in sorted(listed)]


def teams_with_direct_grant(org: Org, repo: Repo) -> list[tuple[str, str]]:
    """(slug, role) of the teams granted the repository themselves, by slug."""
    if org.login != repo.org:
        return []
    return [(slug, direct_team_role(org, slug, repo.name)) for slug in sorted(org.team_repos)
            if repo.name in org.team_repos[slug]]


def team_members(org: Org, slug: str) -> set[str]:
    """A team's members, the members of its child teams included (as GitHub counts them)."""
    return {login for child, members in org.team_members.items() if slug in team_lineage(org, child)
            for login in members}
