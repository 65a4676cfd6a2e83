"""Guarantees of the local git repository provider, on real bare repositories: the protection plain git enforces
(no force pushes, no deletions) is in force for git itself; settings drift is restored and a second run writes
nothing; another owner's repository, a person as owner and a repository Golden Path did not create are refused
before any write; a dry-run creates nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from backend.errors import ConflictError, PolicyViolation
from backend.providers.changes import Change
from backend.providers.local_git import LocalGitHost
from backend.providers.repositories import Protection, RepositoryResult, RepositorySpec
from tests.conftest import unique

ORG = "acme"
PAYMENTS, LEDGER = "group:default/team-payments", "group:default/team-ledger"
FILES = {"README.md": b"# svc\n", "CODEOWNERS": b"* @acme/team-payments\n"}


def spec_for(name: str, owner: str = PAYMENTS, **overrides: Any) -> RepositorySpec:
    values: dict[str, Any] = dict(
        org=ORG, name=name, description="Payments API", visibility="private", default_branch="main",
        owner_team=owner.rsplit("/", 1)[-1], owner_ref=owner, team_permission="maintain", topics=("python", "api"),
        protection=Protection(), commit_message="Initial commit", skeleton="golden-path-service@1.1.0",
        collaborators=(("alice", "push"),))
    values.update(overrides)
    return RepositorySpec(**values)


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


@pytest.fixture
def host(tmp_path: Path) -> LocalGitHost:
    return LocalGitHost(root=str(tmp_path / "git"), base_url="http://127.0.0.1:7070")


def ensure(host: LocalGitHost, spec: RepositorySpec, *, adopt: bool = False, dry_run: bool = False,
           files: dict[str, bytes] = FILES) -> tuple[RepositoryResult, list[Change]]:
    changes: list[Change] = []
    result = host.ensure_repository(spec, files, adopt=adopt, dry_run=dry_run, on_change=changes.append)
    return result, changes


def bare(host: LocalGitHost, name: str) -> Path:
    return host.root / ORG / f"{name}.git"


def state(host: LocalGitHost, name: str) -> tuple[str, str]:
    path = str(bare(host, name))
    return (git("--git-dir", path, "config", "--list", "--local").stdout,
            git("--git-dir", path, "for-each-ref", check=False).stdout)


def test_git_itself_refuses_force_pushes_and_deletions(host: LocalGitHost, tmp_path: Path) -> None:
    name = unique("svc")
    result, _ = ensure(host, spec_for(name))
    assert result.settings["receive.denynonfastforwards"] == "true"
    assert result.settings["receive.denydeletes"] == "true"
    clone = tmp_path / "clone"
    git("clone", "-q", str(bare(host, name)), str(clone))
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--amend", "-m", "history rewritten", cwd=clone)
    forced = git("push", "-q", "--force", "origin", "main", cwd=clone, check=False)
    assert forced.returncode != 0 and "non-fast-forward" in forced.stderr
    deleted = git("push", "-q", "origin", ":main", cwd=clone, check=False)
    assert deleted.returncode != 0 and "deletion prohibited" in deleted.stderr
    assert git("--git-dir", str(bare(host, name)), "rev-parse", "main").stdout.strip() == result.commit_hash


def test_the_repository_records_its_owner_and_settings_as_asked(host: LocalGitHost) -> None:
    name = unique("svc")
    spec = spec_for(name, protection=Protection(required_approving_reviews=2, require_code_owner_reviews=True))
    result, changes = ensure(host, spec)
    assert [(c.kind, c.outcome.value) for c in changes] == [("repository.repo", "created")]
    assert {k: v for k, v in result.settings.items() if k.startswith("goldenpath.")} == {
        "goldenpath.managed": "true", "goldenpath.owner": PAYMENTS, "goldenpath.owner-team": "team-payments",
        "goldenpath.team-permission": "maintain", "goldenpath.visibility": "private",
        "goldenpath.topics": "api,python", "goldenpath.skeleton": "golden-path-service@1.1.0",
        "goldenpath.collaborators": "alice:push", "goldenpath.required-approving-reviews": "2",
        "goldenpath.require-code-owner-reviews": "true"}
    log = git("--git-dir", str(bare(host, name)), "log", "--format=%P|%s", "main").stdout.splitlines()
    assert log == ["|Initial commit"]  # one root commit


def test_a_second_run_writes_nothing(host: LocalGitHost) -> None:
    name = unique("svc")
    first, _ = ensure(host, spec_for(name))
    before = state(host, name)
    again, changes = ensure(host, spec_for(name))
    assert again.writes == 0 and [(c.kind, c.outcome.value) for c in changes] == [("repository.settings", "unchanged")]
    assert state(host, name) == before and again.settings == first.settings
    assert again.commit_hash == first.commit_hash


@pytest.mark.parametrize(("key", "tampered"), [
    ("receive.denyNonFastForwards", "false"), ("receive.denyDeletes", "false"),
    ("goldenpath.team-permission", "admin"), ("goldenpath.require-code-owner-reviews", "false"),
])
def test_settings_drift_is_restored(host: LocalGitHost, key: str, tampered: str) -> None:
    name = unique("svc")
    first, _ = ensure(host, spec_for(name))
    git("--git-dir", str(bare(host, name)), "config", key, tampered)
    again, changes = ensure(host, spec_for(name))
    assert [(c.kind, c.outcome.value, c.fields) for c in changes] == [("repository.settings", "updated", (key,))]
    assert again.settings == first.settings and again.writes == 1


@pytest.mark.parametrize("adopt", [False, True], ids=["plain", "adopt"])
def test_another_owners_repository_is_refused_before_any_write(host: LocalGitHost, adopt: bool) -> None:
    name = unique("svc")
    ensure(host, spec_for(name))
    git("--git-dir", str(bare(host, name)), "config", "receive.denyDeletes", "false")  # drift theirs would repair
    before = state(host, name)
    for other in (LEDGER, "group:other/team-payments"):
        with pytest.raises(ConflictError) as refused:
            ensure(host, spec_for(name, other, collaborators=(("mallory", "admin"),)), adopt=adopt)
        assert refused.value.owner == PAYMENTS
        with pytest.raises(ConflictError):
            host.check_repository(ORG, name, owner_ref=other)
    assert state(host, name) == before


def test_a_repository_recorded_before_full_refs_is_its_teams_group(host: LocalGitHost) -> None:
    name = unique("svc")
    ensure(host, spec_for(name))
    git("--git-dir", str(bare(host, name)), "config", "--unset", "goldenpath.owner")  # it names only its team
    before = state(host, name)
    for other in (LEDGER, "group:other/team-payments"):
        with pytest.raises(ConflictError) as refused:
            ensure(host, spec_for(name, other), adopt=True)
        assert refused.value.owner == PAYMENTS
    assert state(host, name) == before
    _, changes = ensure(host, spec_for(name, "team-payments"))  # the short form is the same owner
    assert [(c.outcome.value, c.fields) for c in changes] == [("updated", ("goldenpath.owner",))]


def test_an_unreadable_recorded_owner_is_no_ones_to_take(host: LocalGitHost) -> None:
    """A damaged record names no one: it is never taken for the wanted owner, nor for nobody."""
    name = unique("svc")
    ensure(host, spec_for(name))
    git("--git-dir", str(bare(host, name)), "config", "goldenpath.owner", "group:default/team payments!")
    before = state(host, name)
    for owner in (PAYMENTS, LEDGER):
        with pytest.raises(ConflictError) as refused:
            ensure(host, spec_for(name, owner), adopt=True)
        assert refused.value.owner == "group:default/team payments!"
    assert state(host, name) == before


def test_a_person_owns_no_repository(host: LocalGitHost) -> None:
    name = unique("svc")
    ensure(host, spec_for(name))
    before = state(host, name)
    person = "user:default/team-payments"
    for target in (name, unique("svc")):
        with pytest.raises(PolicyViolation) as refused:
            ensure(host, spec_for(target, person, owner_team="team-payments"))
        assert refused.value.rule == "owner-must-be-group"
    assert state(host, name) == before and sorted(p.name for p in (host.root / ORG).iterdir()) == [f"{name}.git"]


def test_a_repository_golden_path_did_not_create_needs_adopt_and_keeps_its_content(host: LocalGitHost) -> None:
    name = unique("legacy")
    path = bare(host, name)
    path.parent.mkdir(parents=True)
    git("init", "-q", "--bare", str(path))
    before = state(host, name)
    with pytest.raises(ConflictError, match="adopt"):
        ensure(host, spec_for(name))
    assert state(host, name) == before
    adopted, changes = ensure(host, spec_for(name), adopt=True)
    assert adopted.commit_hash == "" and changes[0].kind == "repository.settings"  # settings only, no content
    assert adopted.settings["goldenpath.owner"] == PAYMENTS and adopted.settings["receive.denydeletes"] == "true"


def test_a_dry_run_creates_nothing(host: LocalGitHost) -> None:
    name = unique("svc")
    planned, changes = ensure(host, spec_for(name), dry_run=True)
    assert [(c.kind, c.outcome.value) for c in changes] == [("repository.repo", "created")]
    assert planned.writes == 0 and planned.commit_hash == "" and not bare(host, name).exists()
