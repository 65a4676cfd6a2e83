"""LocalGitHost: the RepositoryHost port over bare git repositories on disk (the embedded default).

Repositories live at <root>/<org>/<name>.git; the skeleton is written as one commit by a single
`git fast-import`. Settings are kept in the repository's git config (goldenpath.*); "protection" is what
plain git can enforce: no force pushes and no deletions (receive.denyNonFastForwards/denyDeletes).

Crash safety (a worker killed with `kill -9` at any instant): a repository is built whole (init, settings and
markers, the skeleton commit) in a temporary directory beside its final path, <root>/<org>/.tmp-<name>-<hex>.git,
and then renamed into place, so <root>/<org>/<name>.git either does not exist or is complete. Several worker
processes share the root: each repository has a lock file, <root>/.locks/<org>/<name>.lock (fcntl.flock), held
while it is created or converged. The git commands run meanwhile inherit the lock, so when a worker is killed the
lock stays held until its orphaned git commands are gone too; whoever takes it next removes the temporary
directories of that name (their makers are dead) and starts afresh. If the rename finds the name taken (by a writer
that does not take the lock), the temporary repository is discarded and the one there is converged like any
existing one. The skeleton stream ends with `done` (`fast-import --done`): a stream cut short by a kill commits
nothing, instead of a commit holding only the files streamed so far.

An older version created the repository in place and could leave it, marked as Golden Path's for its owner, without
a commit: such a repository is finished on the next run (its skeleton committed, reported as `repository.content`
created). An unmarked empty repository is still one Golden Path did not create (adopt: settings only).

Crash points (backend/crashpoints.py, for tests): `local-git.after-init` (temporary repository initialised, nothing
else), `local-git.before-rename` (temporary repository complete, not yet in place), `local-git.after-rename` (in
place, before the run reports it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from backend.crashpoints import crashpoint
from backend.errors import ConflictError, UpstreamError, UpstreamUnavailable, cap
from backend.ownership import same_owner
from backend.providers.changes import Change, Outcome
from backend.providers.journal import intend
from backend.providers.repositories import (
    RepositoryHost,
    RepositoryResult,
    RepositorySpec,
    owner_team_of,
    recorded_owner,
)

PROVIDER = "local-git"
AUTHOR = "Golden Path <goldenpath@localhost>"
LOCKS = ".locks"  # <root>/.locks/<org>/<name>.lock; no org is named so (a name segment starts with a letter or digit)
TEMP_PREFIX = ".tmp-"  # <root>/<org>/.tmp-<name>-<16 hex>.git; never served (see backend/api/git_access.py)
LOCK_WAIT_SECONDS = 120.0
_log = logging.getLogger("goldenpath.git")


class LocalGitHost(RepositoryHost):
    kind = "local"

    def __init__(self, *, root: str, base_url: str) -> None:
        self.root = Path(root).resolve()
        self.base_url = base_url.rstrip("/")
        self._lock = threading.Lock()
        self._held = threading.local()  # .fds: the lock this thread holds, passed on to the git commands it runs

    def ensure_repository(
        self, spec: RepositorySpec, files: dict[str, bytes], *, adopt: bool, dry_run: bool,
        on_change: Callable[[Change], object], fresh_name: bool = False,
        before_create: Callable[[], object] | None = None,
    ) -> RepositoryResult:
        owner_team_of(spec.owner_ref)  # a person owns no repository: refused before anything is written
        path = self.root / spec.org / f"{spec.name}.git"
        locator = f"{spec.org}/{spec.name}"
        writes = 0
        with self._lock, self._exclusive(spec.org, spec.name, writing=not dry_run):
            if not dry_run:
                self._discard_unfinished(path.parent, spec.name)
            exists = path.exists()
            current: dict[str, str] = {}
            if exists:
                current = self._refuse_foreign(path, org=spec.org, name=spec.name, owner_ref=spec.owner_ref,
                                               adopt=adopt)
            elif not dry_run:
                if before_create is not None:
                    before_create()
                intend(Change("repository.repo", locator, Outcome.CREATED, details={"files": len(files)}))
                exists = not self._create(path, spec, files)
                if exists:  # another writer put it there meanwhile: converge it as any existing one
                    current = self._refuse_foreign(path, org=spec.org, name=spec.name, owner_ref=spec.owner_ref,
                                                   adopt=adopt)
                else:
                    writes += 1
            if not exists:
                on_change(Change("repository.repo", locator, Outcome.CREATED, details={"files": len(files)}))
            elif current.get("goldenpath.managed") == "true" and not self._has_refs(path):
                # ours (marked for this owner), left without its first commit by an older version: finish it
                on_change(Change("repository.content", locator, Outcome.CREATED, details={"files": len(files)}))
                if not dry_run:
                    intend(Change("repository.content", locator, Outcome.CREATED, details={"files": len(files)}))
                    self._fill(path, spec, files)
                    writes += 1
            differing = self._differing_settings(path, spec) if exists else {}
            if differing and not dry_run:
                intend(Change("repository.settings", locator, Outcome.UPDATED, fields=tuple(sorted(differing))))
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

    def _create(self, path: Path, spec: RepositorySpec, files: dict[str, bytes]) -> bool:
        """Build the whole repository beside `path` and rename it into place (one atomic step): False, and nothing
        kept, when the name was taken meanwhile."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f"{TEMP_PREFIX}{spec.name}-{secrets.token_hex(8)}.git"
        placed = False
        try:
            self._git(path.parent, "init", "--bare", "--quiet", f"--initial-branch={spec.default_branch}",
                      temp.name, git_dir=False)
            crashpoint("local-git.after-init")
            for key, value in _wanted_settings(spec).items():
                self._git(temp, "config", key, value)
            self._fill(temp, spec, files)
            crashpoint("local-git.before-rename")
            try:
                os.rename(temp, path)  # never replaces a repository: the target would not be an empty directory
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    raise
                return False
            placed = True
        finally:
            if not placed:
                shutil.rmtree(temp, ignore_errors=True)
        crashpoint("local-git.after-rename")
        return True

    def _fill(self, path: Path, spec: RepositorySpec, files: dict[str, bytes]) -> None:
        """The description and the skeleton as the first commit. `--done`: a stream cut short commits nothing."""
        (path / "description").write_text(spec.description + "\n", encoding="utf-8")
        self._git(path, "fast-import", "--quiet", "--done", stdin=_fast_import_stream(spec, files))

    def _discard_unfinished(self, parent: Path, name: str) -> None:
        """Remove the temporary repositories of `name` that a stopped run left. Called with the repository's lock
        held: whoever made them held it too, so they are dead, and so are the git commands they ran."""
        pattern = re.compile(rf"{re.escape(TEMP_PREFIX + name)}-[0-9a-f]{{16}}\.git")
        with contextlib.suppress(FileNotFoundError):
            for entry in parent.iterdir():
                if pattern.fullmatch(entry.name):
                    _log.warning("removing %s, a repository a stopped run left unfinished", entry)
                    shutil.rmtree(entry, ignore_errors=True)

    @contextlib.contextmanager
    def _exclusive(self, org: str, name: str, *, writing: bool) -> Iterator[None]:
        """The repository's lock, across processes (`writing` False: a dry-run, which writes nothing, not even the
        lock file). The git commands run while it is held inherit it: it is released when this process and every
        git command it started are gone, so the next holder never races a killed run's orphans."""
        if not writing:
            yield
            return
        folder = self.root / LOCKS / org
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise UpstreamUnavailable(f"repository {org}/{name} is being written by another run",
                                                  provider=PROVIDER) from None
                    time.sleep(0.02)
            self._held.fds = (fd,)
            yield
        finally:
            self._held.fds = ()
            os.close(fd)  # not LOCK_UN, which would release it for git commands still holding it as well

    def _refuse_foreign(self, path: Path, *, org: str, name: str, owner_ref: str, adopt: bool) -> dict[str, str]:
        """The repository's settings, when this run may converge it."""
        current = self._settings(path)
        if current.get("goldenpath.managed") != "true":
            if adopt:  # a repository Golden Path did not create: settings only
                return current
            raise ConflictError(f"repository {org}/{name} exists and was not created by Golden Path; "
                                "set adopt: true to apply settings only")
        # adopt never applies to what Golden Path made for another owner
        # git lowercases config keys on read; repositories from before full refs record only the team
        owner = recorded_owner(owner=current.get("goldenpath.owner"), team=current.get("goldenpath.owner-team"))
        if owner is not None and not same_owner(owner, owner_ref):
            raise ConflictError(f"repository {org}/{name} is owned by {owner}", owner=owner)
        return current

    def _differing_settings(self, path: Path, spec: RepositorySpec) -> dict[str, str]:
        current = self._settings(path)
        return {k: v for k, v in _wanted_settings(spec).items() if current.get(k.lower()) != v}

    def _settings(self, path: Path) -> dict[str, str]:
        out = self._git(path, "config", "--list", "--local")
        pairs = (line.split("=", 1) for line in out.splitlines() if "=" in line)
        return {k: v for k, v in pairs if k.startswith(("goldenpath.", "receive."))}

    def _head(self, path: Path, branch: str) -> str:
        return self._git(path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip()

    def _has_refs(self, path: Path) -> bool:
        return bool(self._git(path, "for-each-ref", "--count=1", "--format=%(refname)").strip())

    def _git(self, where: Path, *args: str, git_dir: bool = True, stdin: bytes | None = None,
             check: bool = True) -> str:
        command = ["git", f"--git-dir={where}", *args] if git_dir else ["git", "-C", str(where), *args]
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        result = subprocess.run(command, input=stdin, capture_output=True, env=env, timeout=120, check=False,
                                pass_fds=getattr(self._held, "fds", ()))
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
    parts.append(b"done\n")
    return b"".join(parts)


def _quote(path: str) -> bytes:
    if any(c in path for c in ('"', "\\", "\n")) or path.startswith(" "):
        return b'"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").encode("utf-8") + b'"'
    return path.encode("utf-8")

