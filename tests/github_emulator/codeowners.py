"""GitHub's CODEOWNERS check: the owners it names must exist and have write access to the repository."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.github_emulator import access
from tests.github_emulator.state import Org, Repo

PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


def problems(org: Org, repo: Repo, path: str, text: str) -> Iterator[dict[str, Any]]:
    """The codeowners-errors entries GitHub reports for `text`, the CODEOWNERS file at `path`."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        pattern, *owners = stripped.split()
        for owner in owners:
            if can_review(org, repo, owner):
                continue
            column = line.index(owner) + 1
            yield {"line": number, "column": column, "kind": "Unknown owner", "source": line,
                   "suggestion": None, "path": path,
                   "message": f"Unknown owner on line {number}: make sure {owner} exists and has write access "
                              f"to the repository\n\n  {line}\n  {' ' * (column - 1)}^"}
        if not owners:
            yield {"line": number, "column": len(pattern) + 1, "kind": "Missing owner", "source": line,
                   "suggestion": None, "path": path, "message": f"Missing owner on line {number}"}


def can_review(org: Org, repo: Repo, owner: str) -> bool:
    """Whether an owner has write access, counting grants inherited from parent teams and the base permission."""
    if "@" in owner and not owner.startswith("@"):
        return True  # an e-mail address: GitHub matches it to a user later
    handle = owner.removeprefix("@")
    if "/" in handle:
        org_login, slug = handle.split("/", 1)
        return (org_login == org.login and slug in org.teams
                and access.team_role(org, slug, repo.name) in access.WRITE_ROLES)
    return access.user_role(org, repo, handle) in access.WRITE_ROLES
