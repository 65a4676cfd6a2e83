"""GitOpsCluster: the ClusterTarget port as commits to a GitOps repository that Argo CD or Flux applies.

Layout: clusters/<cluster>/namespaces/<namespace>/<kind>-<name>.yaml plus a kustomization.yaml. Each call
syncs the working clone to the remote, rewrites only files whose content differs, and makes at most one
commit, pushed at once; identical content means no commit. A local bare remote is created on first use.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from backend.crashpoints import crashpoint
from backend.errors import UpstreamError, UpstreamUnavailable, cap
from backend.guardrails import object_name
from backend.providers.changes import Change, Outcome
from backend.providers.clusters import ClusterTarget, TenantResult
from backend.providers.journal import intend
from backend.providers.manifests import (
    check_namespace_owner,
    owned_differences,
    to_yaml,
    unified_diff,
    with_provenance_of,
)

PROVIDER = "gitops"
PUSH_ATTEMPTS = 12
AUTHOR = {"GIT_AUTHOR_NAME": "Golden Path", "GIT_AUTHOR_EMAIL": "goldenpath@localhost",
          "GIT_COMMITTER_NAME": "Golden Path", "GIT_COMMITTER_EMAIL": "goldenpath@localhost"}


class GitOpsCluster(ClusterTarget):
    mode = "gitops"

    def __init__(self, name: str, *, remote: str, workdir: str, branch: str = "main") -> None:
        self.name, self.remote, self.branch = name, remote, branch
        self.workdir = Path(workdir).resolve()
        self._remote_url = str(Path(remote).resolve()) if _is_local(remote) else remote
        self._lock = threading.Lock()
        self._batch = threading.local()  # this thread's bulk read: fetched once (batched_reads)

    @contextmanager
    def batched_reads(self) -> Iterator[None]:
        """One fetch for every read of this thread within it (a conformance pass reads the tree it fetched, not a
        fetch per service); a write still fetches first."""
        self._batch.fetched = False
        try:
            yield
        finally:
            self._batch.fetched = None

    def _sync_to_read(self) -> None:
        fetched = getattr(self._batch, "fetched", None)
        if fetched:
            return
        self._sync()
        if fetched is False:
            self._batch.fetched = True

    def ensure_tenant(
        self, manifests: list[dict[str, Any]], *, owner_ref: str, message: str, dry_run: bool,
        on_change: Callable[[Change], object],
    ) -> TenantResult:
        namespace = manifests[0]["metadata"]["name"]
        folder = Path("clusters") / self.name / "namespaces" / namespace
        with self._exclusive():
            self._sync_to_read() if dry_run else self._sync()
            current_ns = _load(self.workdir / folder / file_name(manifests[0]))
            check_namespace_owner(current_ns, owner_ref=owner_ref, cluster=self.name)
            planned: list[tuple[Change | None, Path, tuple[str, str]]] = [
                self._plan(folder, manifest) for manifest in manifests]
            planned.append(self._plan_kustomization(folder, [file_name(m) for m in manifests]))
            changes = [change for change, _, _ in planned if change is not None]
            diff = "".join(unified_diff(str(path), before, after) for _, path, (before, after) in planned
                           if before != after)
            commit = None
            if diff and not dry_run:
                for change in changes:
                    intend(change)
                for _, path, (_, after) in planned:
                    (self.workdir / path).parent.mkdir(parents=True, exist_ok=True)
                    (self.workdir / path).write_text(after, encoding="utf-8")
                commit = self._commit_and_push(folder, message)
            for change in changes:  # all or nothing: the commit is pushed, or none of it is in force
                on_change(change)
            return TenantResult(changes=changes, diff=diff, commit=commit, writes=1 if commit else 0)

    def check_namespace(self, namespace: str, *, owner_ref: str) -> bool:
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        with self._exclusive():
            self._sync_to_read()
            current = _load(self.workdir / "clusters" / self.name / "namespaces" / namespace / file_name(manifest))
        check_namespace_owner(current, owner_ref=owner_ref, cluster=self.name)
        return current is not None

    def _plan(self, folder: Path, manifest: dict[str, Any]) -> tuple[Change, Path, tuple[str, str]]:
        path = folder / file_name(manifest)
        before_text = _read(self.workdir / path)
        current = yaml.safe_load(before_text) if before_text else None
        after_text = to_yaml(with_provenance_of(manifest, current))
        if not before_text:
            outcome = Outcome.CREATED
        else:
            outcome = Outcome.UNCHANGED if before_text == after_text else Outcome.UPDATED
        details: dict[str, Any] = {"file": str(path)} if outcome is not Outcome.UNCHANGED else {}
        fields: tuple[str, ...] = ()
        if outcome is Outcome.UPDATED and isinstance(current, dict):  # the file is rewritten whole; these are ours
            details["differences"] = owned_differences(current, manifest)
            fields = tuple(d["field"] for d in details["differences"]) or ("file",)
        change = Change(f"kubernetes.{manifest['kind']}", f"{self.name}:{object_name(manifest)}", outcome,
                        fields=fields, details=details)
        return change, path, (before_text, after_text)

    def _plan_kustomization(self, folder: Path, files: list[str]) -> tuple[None, Path, tuple[str, str]]:
        path = folder / "kustomization.yaml"
        body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files}
        return None, path, (_read(self.workdir / path), yaml.safe_dump(body, sort_keys=False))

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer per working clone: a thread lock here, a file lock across processes."""
        self.workdir.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(f"{self.workdir}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _sync(self, *, fresh: bool = False) -> None:
        if _is_local(self.remote) and not Path(self.remote).exists():
            Path(self.remote).mkdir(parents=True)
            self._git("init", "--bare", "--quiet", f"--initial-branch={self.branch}", str(Path(self.remote).resolve()),
                      in_workdir=False)
        if not (self.workdir / ".git").exists():
            # cloned aside and renamed into place: a clone killed mid-way (its replica's kill -9) leaves no
            # half-configured working clone behind, only a staging folder the next clone removes
            staging = self.workdir.with_name(f"{self.workdir.name}.cloning")
            shutil.rmtree(staging, ignore_errors=True)
            self._git("clone", "--quiet", self._remote_url, str(staging), in_workdir=False)
            crashpoint("gitops.before-clone-rename")
            staging.rename(self.workdir)
            self._git("checkout", "--quiet", "-B", self.branch)
        drop_stale_locks(self.workdir / ".git")
        self._git("fetch", "--quiet", "origin")
        has_remote_branch = self._git("ls-remote", "--heads", "origin", self.branch).strip()
        if has_remote_branch:
            try:
                self._git("reset", "--quiet", "--hard", f"origin/{self.branch}")
            except UpstreamError:
                if fresh:
                    raise
                # the working clone is only a cache of the remote: one a killed replica left unusable (no
                # remote-tracking branch) is dropped and cloned again
                shutil.rmtree(self.workdir)
                self._sync(fresh=True)
                return
        self._git("clean", "--quiet", "-fdx")

    def _commit_and_push(self, folder: Path, message: str) -> str:
        self._git("add", "--all", str(folder))
        self._git("commit", "--quiet", "-m", message)
        for attempt in range(PUSH_ATTEMPTS):
            try:
                self._git("push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}")
                break
            except UpstreamUnavailable:
                # another replica (its own clone) pushed meanwhile: its commit touches another namespace's folder
                # (names are claimed), so ours replays on top of it; anything else is the remote's failure
                if attempt == PUSH_ATTEMPTS - 1 or not self._rebased_on_remote():
                    raise
                time.sleep(random.uniform(0, min(1.0, 0.02 * 2 ** attempt)))  # noqa: S311 - jitter, not a secret
        return self._git("rev-parse", "HEAD").strip()

    def _rebased_on_remote(self) -> bool:
        self._git("fetch", "--quiet", "origin")
        try:
            self._git("rebase", "--quiet", f"origin/{self.branch}")
        except UpstreamError:
            self._git("rebase", "--abort")
            return False
        return True

    def _git(self, *args: str, in_workdir: bool = True) -> str:
        where = self.workdir if in_workdir else self.workdir.parent
        env = {**os.environ, **AUTHOR, "GIT_TERMINAL_PROMPT": "0"}
        try:
            result = subprocess.run(["git", *args], cwd=where, env=env, capture_output=True, text=True,
                                    timeout=60, check=True)
        except subprocess.TimeoutExpired as exc:
            raise UpstreamUnavailable(f"git {args[0]} timed out for cluster {self.name}", provider=PROVIDER) from exc
        except subprocess.CalledProcessError as exc:
            reason = cap(exc.stderr or exc.stdout or "", 200)
            if args[0] in {"push", "fetch", "clone"}:
                raise UpstreamUnavailable(f"git {args[0]} failed for cluster {self.name}: {reason}",
                                          provider=PROVIDER) from exc
            raise UpstreamError(f"git {args[0]} failed for cluster {self.name}: {reason}", provider=PROVIDER) from exc
        return result.stdout


def drop_stale_locks(git_dir: Path) -> None:
    """Remove the lock files a git command leaves when its process is killed mid-way (a replica's kill -9):
    the caller holds the clone's lock (`_exclusive`), so no git command of ours is running in it, and the reset
    that follows repairs whatever the killed command left half done."""
    for lock in (git_dir / "index.lock", git_dir / "HEAD.lock", *(git_dir / "refs").rglob("*.lock")):
        lock.unlink(missing_ok=True)


def file_name(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _load(path: Path) -> dict[str, Any] | None:
    text = _read(path)
    loaded: dict[str, Any] | None = yaml.safe_load(text) if text else None
    return loaded


def _is_local(remote: str) -> bool:
    return "://" not in remote and not remote.startswith("git@")
