"""Who may read which local repository over git HTTP: public to anyone, internal to any valid credential,
private (or with no visibility recorded) to a credential that may act for the owner. A repository the caller
may not read is answered exactly like a missing one, and without a credential both ask for one."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dulwich.config import ConfigFile

from backend.ownership import canonical_ref
from backend.services.auth import Principal

ReadCheck = Callable[[Principal, str], bool]

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
# only what dulwich serves (smart and dumb protocol), so no other file below a repository is reachable
_ENDPOINT = (r"HEAD|info/refs|git-upload-pack|objects/info/(?:alternates|http-alternates|packs)"
             r"|objects/[0-9a-f]{2}/[0-9a-f]{38,62}|objects/pack/pack-[0-9a-f]{40,64}\.(?:pack|idx)")
_PATH = re.compile(rf"/(?P<org>{_SEGMENT})/(?P<name>{_SEGMENT})\.git/(?:{_ENDPOINT})")
_SECTION = (b"goldenpath",)


class Decision(enum.Enum):
    SERVE = "serve"
    CHALLENGE = "challenge"  # 401: no (valid) credential, and the repository is not public
    HIDE = "hide"  # 404: missing, or not readable by this credential


@dataclass(frozen=True)
class Target:
    org: str
    name: str


@dataclass(frozen=True)
class RepositoryAccess:
    visibility: str  # public, internal or private
    owner: str | None  # canonical entity ref


def locate(path_info: str) -> Target | None:
    """The repository a request names, or None for anything but `/<org>/<name>.git/<git endpoint>`:
    traversal (`..`, absolute, percent-encoded: the server has decoded PATH_INFO), other files, odd names."""
    match = _PATH.fullmatch(path_info)
    return Target(org=match["org"], name=match["name"]) if match else None


def repository_access(root: Path, target: Target) -> RepositoryAccess | None:
    """Visibility and owner from the repository's git config; None when there is no such bare repository
    directly at <root>/<org>/<name>.git (a symbolic link that leads elsewhere counts as none)."""
    base = root.resolve()
    candidate = base / target.org / f"{target.name}.git"
    try:
        if candidate.resolve(strict=True) != candidate or not candidate.is_dir():
            return None
        config = ConfigFile.from_path(str(candidate / "config"))
    except (OSError, ValueError):
        return None
    visibility = _get(config, b"visibility")
    return RepositoryAccess(visibility=visibility if visibility in ("public", "internal") else "private",
                            owner=_owner(config))


def decide(repository: RepositoryAccess | None, principal: Principal | None, may_read: ReadCheck) -> Decision:
    if repository is not None and repository.visibility == "public":
        return Decision.SERVE
    if principal is None:
        return Decision.CHALLENGE  # for a missing repository too, so an anonymous caller learns no names
    if repository is None:
        return Decision.HIDE
    if repository.visibility == "internal":
        return Decision.SERVE
    if repository.owner is None:
        return Decision.SERVE if principal.admin else Decision.HIDE
    return Decision.SERVE if may_read(principal, repository.owner) else Decision.HIDE


def _owner(config: ConfigFile) -> str | None:
    """`goldenpath.owner` (a full ref); repositories created before it was recorded carry only the team."""
    owner, team = _get(config, b"owner"), _get(config, b"owner-team")
    try:
        if owner:
            return canonical_ref(owner)
        return canonical_ref(f"group:default/{team}") if team else None
    except ValueError:
        return None


def _get(config: ConfigFile, key: bytes) -> str | None:
    try:
        value = config.get(_SECTION, key)
    except KeyError:
        return None
    return value.decode("utf-8", "replace").strip() if isinstance(value, bytes) else None
