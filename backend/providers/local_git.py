"""LocalGitHost: the RepositoryHost port over bare git repositories on disk (the embedded default).

Repositories live at <root>/<org>/<name>.git; the skeleton is written as one commit by a single
`git fast-import`. Settings are kept in the repository's git config (goldenpath.*); "protection" is what
plain git can enforce: no force pushes and no deletions (receive.denyNonFastForwards/denyDeletes).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from backend.errors import ConflictError, UpstreamError, cap
from backend.ownership import same_owner
from backend.providers.changes import Change, Outcome
from backend.providers.repositories import (
    RepositoryHost,
    RepositoryResult,
    RepositorySpec,
    owner_team_of,
    recorded_owner,
)

PROVIDER = "local-git"
AUTHOR = "Golden Path <goldenpath@localhost>"


class LocalGitHost(RepositoryHost):
    kind = "local"

    def __init__(self, *, root: str, base_url: str) -> None:
        self.root = Path(root).resolve()
        self.base_url = base_url.rstrip("/")
        self._lock = threading.Lock()

    def ensure_repository(
        self, spec: RepositorySpec, files: dict[str, bytes], *, adopt: bool, dry_run: bool,
        on_change: Callable[[Change], object], fresh_name: bool = False,
        before_create: Callable[[], object] | None = None,
    ) -> RepositoryResult:
        owner_team_of(spec.owner_ref)  # a person owns no repository: refused before anything is written
        path = self.root / spec.org / f"{spec.name}.git"
        locator = f"{spec.org}/{spec.name}"
        writes = 0
        with self._lock:
            exists = path.exists()
            if exists:
                self._refuse_foreign(path, org=spec.org, name=spec.name, owner_ref=spec.owner_ref, adopt=adopt)
            elif not dry_run:
                if before_create is not None:
                    before_create()
                self._create(path, spec, files)
                writes += 1
            if not exists:
                on_change(Change("repository.repo", locator, Outcome.CREATED, details={"files": len(files)}))
            differing = self._differing_settings(path, spec) if exists else {}
            if differing and not dry_run:
                for key, value in differing.items():
                    self._git(path, "config", key, value)
                    writes += 1
            if exists:
                outcome = Outcome.UPDATED if differing else Outcome.UNCHANGED
                on_change(Change("repository.settings", locator, outcome, fields=tuple(sorted(differing))))
            commit = self._head(path, spec.default_branch) if path.exists() else ""
            settings = self._settings(path) if path.exists() else {}
        return RepositoryResult(remote_url=f"{self.base_url}/git/{spec.org}/{spec.name}.git",
                                contents_url=f"{self.base_url}/git/{spec.org}/{spec.name}.git",
                                commit_hash=commit, settings=settings, writes=writes)

    def check_repository(self, org: str, name: str, *, owner_ref: str, fresh_name: bool = False) -> bool:
        owner_team_of(owner_ref)
        path = self.root / org / f"{name}.git"
        if not path.exists():
            return False
        self._refuse_foreign(path, org=org, name=name, owner_ref=owner_ref, adopt=False)
        return True

    def _create(self, path: Path, spec: RepositorySpec, files: dict[str, bytes]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._git(path.parent, "init", "--bare", "--quiet", f"--initial-branch={spec.default_branch}", path.name,
                  git_dir=False)
        for key, value in _wanted_settings(spec).items():
            self._git(path, "config", key, value)
        (path / "description").write_text(spec.description + "\n", encoding="utf-8")
        self._git(path, "fast-import", "--quiet", stdin=_fast_import_stream(spec, files))

    def _refuse_foreign(self, path: Path, *, org: str, name: str, owner_ref: str, adopt: bool) -> None:
        current = self._settings(path)
        if current.get("goldenpath.managed") != "true":
            if adopt:  # a repository Golden Path did not create: settings only
                return
            raise ConflictError(f"repository {org}/{name} exists and was not created by Golden Path; "
                                "set adopt: true to apply settings only")
        # adopt never applies to what Golden Path made for another owner
        # git lowercases config keys on read; repositories from before full refs record only the team
        owner = recorded_owner(owner=current.get("goldenpath.owner"), team=current.get("goldenpath.owner-team"))
        if owner is not None and not same_owner(owner, owner_ref):
            raise ConflictError(f"repository {org}/{name} is owned by {owner}", owner=owner)

    def _differing_settings(self, path: Path, spec: RepositorySpec) -> dict[str, str]:
        current = self._settings(path)
        return {k: v for k, v in _wanted_settings(spec).items() if current.get(k.lower()) != v}

    def _settings(self, path: Path) -> dict[str, str]:
        out = self._git(path, "config", "--list", "--local")
        pairs = (line.split("=", 1) for line in out.splitlines() if "=" in line)
        return {k: v for k, v in pairs if k.startswith(("goldenpath.", "receive."))}

    def _head(self, path: Path, branch: str) -> str:
        return self._git(path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip()

    def _git(self, where: Path, *args: str, git_dir: bool = True, stdin: bytes | None = None,
             check: bool = True) -> str:
        command = ["git", f"--git-dir={where}", *args] if git_dir else ["git", "-C", str(where), *args]
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        result = subprocess.run(command, input=stdin, capture_output=True, env=env, timeout=120, check=False)
        if check and result.returncode != 0:
            reason = cap(result.stderr.decode("utf-8", "replace"), 200)
            raise UpstreamError(f"git {args[0]} failed for {where.name}: {reason}", provider=PROVIDER)
        return result.stdout.decode("utf-8", "replace")


def _wanted_settings(spec: RepositorySpec) -> dict[str, str]:
    protection = spec.protection
    return {
        "goldenpath.managed": "true",
        "goldenpath.owner": spec.owner_ref,
        "goldenpath.owner-team": spec.owner_team,
        "goldenpath.team-permission": spec.team_permission,
        "goldenpath.visibility": spec.visibility,
        "goldenpath.topics": ",".join(sorted(spec.topics)),
        "goldenpath.skeleton": spec.skeleton,
        "goldenpath.collaborators": ",".join(f"{login}:{permission}" for login, permission in spec.collaborators),
        "goldenpath.required-approving-reviews": str(protection.required_approving_reviews),
        "goldenpath.require-code-owner-reviews": str(protection.require_code_owner_reviews).lower(),
        "receive.denyNonFastForwards": "true",
        "receive.denyDeletes": "true",
    }


def _fast_import_stream(spec: RepositorySpec, files: dict[str, bytes]) -> bytes:
    stamp = f"{int(time.time())} +0000"
    message = spec.commit_message.encode("utf-8")
    parts: list[bytes] = [
        f"commit refs/heads/{spec.default_branch}\n".encode(),
        f"author {AUTHOR} {stamp}\ncommitter {AUTHOR} {stamp}\n".encode(),
        b"data %d\n%s\n" % (len(message), message),
    ]
    for name, content in sorted(files.items()):
        parts.append(b"M 100644 inline %s\ndata %d\n%s\n" % (_quote(name), len(content), content))
    return b"".join(parts)


def _quote(path: str) -> bytes:
    if any(c in path for c in ('"', "\\", "\n")) or path.startswith(" "):
        return b'"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").encode("utf-8") + b'"'
    return path.encode("utf-8")

