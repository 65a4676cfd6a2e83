"""GitHubHost against the GitHub emulator, whose every exchange is checked against GitHub's OpenAPI description.

One commit whatever the number of files, settings read back, a re-run that writes nothing, drift
restored, ownership and adoption, fail-closed refusals, rate limits, GitHub App credentials and an
Enterprise Server base URL.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backend.errors import ConflictError, PolicyViolation, UpstreamError, UpstreamUnavailable
from backend.providers.changes import Change
from backend.providers.github import GitHubConnection, GitHubHost
from backend.providers.repositories import Protection, RepositorySpec
from tests.conftest import GITHUB_ORG, GITHUB_TOKEN, start_github, unique
from tests.github_emulator import GitHubEmulator, SpecCheck

SETTINGS_WRITES = {"PUT /repos/{owner}/{repo}/topics", "PUT /orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}",
                   "PUT /repos/{owner}/{repo}/branches/{branch}/protection"}


def make_spec(**overrides: Any) -> RepositorySpec:
    values: dict[str, Any] = dict(
        org=GITHUB_ORG, name=unique("svc"), description="Payments API", visibility="private", default_branch="main",
        owner_team="team-payments", owner_ref="group:default/team-payments",
        team_permission="maintain", topics=("payments", "python"),
        protection=Protection(required_status_checks=("ci",), mode="classic"),
        commit_message="Initial commit from the skeleton",
        skeleton="golden-path-service@1.0.0")
    values.update(overrides)
    return RepositorySpec(**values)


def skeleton_files(count: int = 6, team: str = "team-payments") -> dict[str, bytes]:
    files = {
        "README.md": b"# Payments API\n",
        "CODEOWNERS": f"*  @{GITHUB_ORG}/{team}\n".encode(),
        ".goldenpath.yaml": f"skeleton: golden-path-service\nversion: 1.0.0\nteam: {team}\n".encode(),
        "scripts/run.sh": b"#!/bin/sh\nexec python -m app\n",
    }
    for index in range(count - len(files)):
        files[f"src/app/module_{index:04d}.py"] = f"VALUE = {index}\n".encode()
    return files


def host_for(emulator: GitHubEmulator, **overrides: Any) -> GitHubHost:
    connection = GitHubConnection(api_url=emulator.api_url, token=GITHUB_TOKEN, seconds_between_requests=0,
                                  seconds_between_writes=0, rate_limit_budget_seconds=5)
    return GitHubHost(replace(connection, **overrides), org=GITHUB_ORG)


def ensure(host: GitHubHost, spec: RepositorySpec, files: dict[str, bytes], *, adopt: bool = False,
           dry_run: bool = False) -> tuple[Any, list[Change]]:
    changes: list[Change] = []
    result = host.ensure_repository(spec, files, adopt=adopt, dry_run=dry_run, on_change=changes.append)
    return result, changes


@pytest.fixture
def host(github: GitHubEmulator) -> GitHubHost:
    return host_for(github)


def test_creates_one_commit_protected_and_owned(github: GitHubEmulator, host: GitHubHost) -> None:
    spec, files = make_spec(), skeleton_files()
    result, changes = ensure(host, spec, files)

    history = github.history(GITHUB_ORG, spec.name)
    assert len(history) == 1 and history[0].parents == () and history[0].message == spec.commit_message
    assert github.files(GITHUB_ORG, spec.name) == files  # the seed commit is not in history
    repo = github.repos[(GITHUB_ORG, spec.name)]
    assert repo.refs["refs/heads/main"] == result.commit_hash
    assert result.remote_url == f"{github.web_url}/{GITHUB_ORG}/{spec.name}.git"
    assert result.contents_url == f"{github.web_url}/{GITHUB_ORG}/{spec.name}/blob/main"
    assert result.settings == {
        "description": "Payments API", "visibility": "private", "defaultBranch": "main",
        "topics": ["payments", "python"], "teams": {"team-payments": "maintain"},
        "protection": {"requiredApprovingReviews": 1, "requireCodeOwnerReviews": True, "dismissStaleReviews": True,
                       "requiredStatusChecks": ["ci"], "enforceAdmins": True, "requiredLinearHistory": False,
                       "requiredConversationResolution": True, "allowForcePushes": False, "allowDeletions": False},
        "codeowners": "valid"}
    assert [(c.kind, c.outcome.value) for c in changes] == [
        ("repository.repo", "created"), ("repository.repository", "unchanged"), ("repository.topics", "created"),
        ("repository.teams", "created"), ("repository.protection", "created")]
    assert github.files(GITHUB_ORG, spec.name)["scripts/run.sh"].startswith(b"#!")
    assert repo.objects.files(repo.objects.commits[result.commit_hash].tree)["scripts/run.sh"][0] == "100755"


def test_the_push_costs_the_same_calls_for_10_or_300_files(github: GitHubEmulator, host: GitHubHost) -> None:
    writes = []
    for count in (10, 300):
        before = github.writes
        spec = make_spec()
        result, _ = ensure(host, spec, skeleton_files(count))
        assert len(github.files(GITHUB_ORG, spec.name)) == count
        writes.append((github.writes - before, result.writes))
    assert writes[0] == writes[1] == (8, 8)  # repo, seed, tree, commit, ref, topics, team, protection


def test_a_second_run_writes_nothing(github: GitHubEmulator, host: GitHubHost) -> None:
    spec, files = make_spec(), skeleton_files()
    first, _ = ensure(host, spec, files)
    before = github.writes
    again, changes = ensure(host, spec, files)
    assert github.writes == before and again.writes == 0
    assert not [c for c in changes if c.is_write]
    assert again.commit_hash == first.commit_hash and again.settings == first.settings


def test_drift_is_restored_and_only_drift_is_written(github: GitHubEmulator, host: GitHubHost) -> None:
    spec, files = make_spec(), skeleton_files()
    ensure(host, spec, files)
    org, repo = github.orgs[GITHUB_ORG], github.repos[(GITHUB_ORG, spec.name)]
    repo.topics = ["tampered"]
    org.team_repos["team-payments"][spec.name] = "pull"
    del repo.protection["main"]
    before = len(github.log)
    result, changes = ensure(host, spec, files)
    written = {f"{m} {t}" for m, t, _ in github.log[before:] if m != "GET"}
    assert written == SETTINGS_WRITES
    assert {c.kind: c.outcome.value for c in changes if c.is_write} == {
        "repository.topics": "updated", "repository.teams": "updated", "repository.protection": "created"}
    assert result.settings["topics"] == ["payments", "python"]
    assert result.settings["teams"]["team-payments"] == "maintain"


def test_an_existing_repository_we_did_not_create_needs_adopt(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec()
    github.create_repo({"org": GITHUB_ORG}, {"name": spec.name, "auto_init": True}, {}, "someone")
    github.put_content({"owner": GITHUB_ORG, "repo": spec.name, "path": ".github/CODEOWNERS"}, {
        "message": "owners", "content": base64.b64encode(b"* @acme/team-payments\n").decode()}, {}, "someone")
    original = github.files(GITHUB_ORG, spec.name)
    with pytest.raises(ConflictError, match="not created by Golden Path"):
        ensure(host, spec, skeleton_files())
    before = github.writes
    result, _ = ensure(host, spec, skeleton_files(), adopt=True)
    # adopt applies settings only: the content stays theirs, and their CODEOWNERS is the one checked
    assert github.files(GITHUB_ORG, spec.name) == original
    assert result.commit_hash == github.repos[(GITHUB_ORG, spec.name)].refs["refs/heads/main"]
    assert github.writes > before


def test_adopting_without_codeowners_fails_closed(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec()
    github.create_repo({"org": GITHUB_ORG}, {"name": spec.name, "auto_init": True}, {}, "someone")
    with pytest.raises(PolicyViolation, match="no CODEOWNERS") as failure:
        ensure(host, spec, skeleton_files(), adopt=True)
    assert failure.value.rule == "codeowners"


def test_another_teams_repository_is_a_conflict_naming_the_owner(host: GitHubHost) -> None:
    spec = make_spec()
    ensure(host, spec, skeleton_files())
    with pytest.raises(ConflictError) as taken:
        ensure(host, replace(spec, owner_team="team-ledger", owner_ref="group:default/team-ledger"),
               skeleton_files(team="team-ledger"))
    assert taken.value.owner == "group:default/team-payments"


def test_an_empty_repository_is_finished_with_one_commit(github: GitHubEmulator, host: GitHubHost) -> None:
    """A run that stopped after creating the repository left it empty: the retry publishes into it."""
    spec, files = make_spec(), skeleton_files()
    github.create_repo({"org": GITHUB_ORG}, {"name": spec.name}, {}, "goldenpath-bot")
    result, changes = ensure(host, spec, files)
    assert (changes[0].kind, changes[0].outcome.value) == ("repository.content", "created")
    assert len(github.history(GITHUB_ORG, spec.name)) == 1 and github.files(GITHUB_ORG, spec.name) == files
    assert result.settings["codeowners"] == "valid"


def test_a_run_stopped_mid_publish_is_finished_by_the_next(github: GitHubEmulator, host: GitHubHost) -> None:
    """E.g. a token without `workflows` permission is refused the tree; once fixed, the retry publishes."""
    spec, files = make_spec(), skeleton_files()
    github.refuse("POST", "/repos/{owner}/{repo}/git/trees", 403, "Resource not accessible by integration")
    with pytest.raises(UpstreamError, match="Resource not accessible"):
        ensure(host, spec, files)
    assert list(github.files(GITHUB_ORG, spec.name)) == [".goldenpath.yaml"]  # only the seed
    result, changes = ensure(host, spec, files)
    assert (changes[0].kind, changes[0].outcome.value) == ("repository.content", "created")
    assert github.files(GITHUB_ORG, spec.name) == files and len(github.history(GITHUB_ORG, spec.name)) == 1
    assert result.settings["codeowners"] == "valid"


def test_a_name_taken_between_read_and_create_is_claimed_not_failed(github: GitHubEmulator,
                                                                     host: GitHubHost) -> None:
    spec, files = make_spec(), skeleton_files()
    github.before_next("POST", "/orgs/{org}/repos", lambda: github.create_repo(
        {"org": GITHUB_ORG}, {"name": spec.name}, {}, "goldenpath-bot"))  # a concurrent run, still empty
    result, changes = ensure(host, spec, files)
    assert [s for _, t, s in github.log if t == "/orgs/{org}/repos"] == [422]
    assert changes[0].kind == "repository.content" and github.files(GITHUB_ORG, spec.name) == files
    assert result.commit_hash


def test_git_data_on_an_empty_repository_is_409_until_seeded(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec()
    github.create_repo({"org": GITHUB_ORG}, {"name": spec.name}, {}, "goldenpath-bot")
    api = host.api()
    status, body = api.call("POST", f"/repos/{GITHUB_ORG}/{spec.name}/git/trees", what="write a tree",
                            body={"tree": [{"path": "a", "mode": "100644", "type": "blob", "content": "a"}]},
                            accept=(409,))
    assert (status, body["message"]) == (409, "Git Repository is empty.")


def test_a_missing_team_fails_before_anything_is_created(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec(owner_team="team-nobody", owner_ref="group:default/team-nobody")
    with pytest.raises(PolicyViolation) as failure:
        ensure(host, spec, skeleton_files(team="team-nobody"))
    assert (failure.value.rule, failure.value.field) == ("owner-team-exists", "owner")
    assert github.writes == 0 and (GITHUB_ORG, spec.name) not in github.repos


def test_refused_protection_fails_closed_with_githubs_reason(github_spec: SpecCheck) -> None:
    """GitHub Free refuses protection on private repositories; publish:github would only log a warning."""
    emulator = start_github(github_spec, plan="free")
    try:
        changes: list[Change] = []
        with pytest.raises(UpstreamError, match="Upgrade to GitHub Pro") as failure:
            host_for(emulator).ensure_repository(make_spec(), skeleton_files(), adopt=False, dry_run=False,
                                                 on_change=changes.append)
        assert not failure.value.is_retryable
        # GitHub refuses even the read of protection there; the audit shows how far the run got
        assert [c.kind for c in changes][-1] == "repository.teams"
        assert "repository.repo" in [c.kind for c in changes]
    finally:
        emulator.stop()
    emulator.assert_clean()


def test_codeowners_naming_a_team_without_access_fails_closed(host: GitHubHost) -> None:
    files = skeleton_files()
    files["CODEOWNERS"] = f"*  @{GITHUB_ORG}/team-payments\n/docs/  @{GITHUB_ORG}/team-ledger\n".encode()
    with pytest.raises(PolicyViolation, match="line 2: Unknown owner") as failure:
        ensure(host, make_spec(), files)
    assert failure.value.rule == "codeowners"


def test_collaborators_members_are_added_and_others_invited_once(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec(collaborators=(("alice", "push"), ("bob", "triage")))
    result, _ = ensure(host, spec, skeleton_files())
    repo = github.repos[(GITHUB_ORG, spec.name)]
    assert repo.collaborators == {"alice": "write"} and repo.invitations == {"bob": "triage"}
    assert result.settings["collaborators"] == {"alice": "write", "bob": "triage"}
    before = github.writes
    ensure(host, spec, skeleton_files())
    assert github.writes == before  # a pending invitation counts as applied


def test_dry_run_writes_nothing(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec()
    planned, changes = ensure(host, spec, skeleton_files(), dry_run=True)
    assert github.writes == 0 and planned.commit_hash == ""
    assert [c.kind for c in changes if c.is_write] == ["repository.repo"]
    assert planned.settings["teams"] == {"team-payments": "maintain"}
    ensure(host, spec, skeleton_files())
    github.repos[(GITHUB_ORG, spec.name)].topics = []
    before = github.writes
    _, changes = ensure(host, spec, skeleton_files(), dry_run=True)
    assert github.writes == before and [c.kind for c in changes if c.is_write] == ["repository.topics"]


def test_binary_files_go_through_blobs(github: GitHubEmulator, host: GitHubHost) -> None:
    spec, files = make_spec(), {**skeleton_files(), "assets/logo.png": b"\x89PNG\r\n\x1a\n\xff\x00"}
    ensure(host, spec, files)
    assert github.files(GITHUB_ORG, spec.name)["assets/logo.png"] == files["assets/logo.png"]
    assert github.calls()["POST /repos/{owner}/{repo}/git/blobs"] == 1


def test_secondary_rate_limits_are_waited_out(github: GitHubEmulator, host: GitHubHost) -> None:
    github.secondary_limit(times=2, retry_after=1)
    started = time.monotonic()
    result, _ = ensure(host, make_spec(), skeleton_files())
    assert result.commit_hash and time.monotonic() - started >= 2.0
    assert [status for _, _, status in github.log[:2]] == [403, 403]


def test_a_429_secondary_limit_is_waited_out_too(github: GitHubEmulator, host: GitHubHost) -> None:
    github.secondary_limit(times=1, retry_after=1, status=429)
    assert ensure(host, make_spec(), skeleton_files())[0].commit_hash


def test_a_wait_beyond_the_budget_is_a_retryable_503(github: GitHubEmulator, host: GitHubHost) -> None:
    github.secondary_limit(times=1, retry_after=30)
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as failure:
        ensure(host, make_spec(), skeleton_files())
    assert time.monotonic() - started < 2.0  # no pointless waiting
    assert failure.value.is_retryable and failure.value.retry_after == 30 and failure.value.status == 503
    assert "secondary rate limit" in failure.value.detail


def test_an_exhausted_primary_limit_says_when_to_retry(github: GitHubEmulator, host: GitHubHost) -> None:
    github.exhaust_primary(reset_in=1800)
    with pytest.raises(UpstreamUnavailable) as failure:
        ensure(host, make_spec(), skeleton_files())
    assert 1790 <= failure.value.retry_after <= 1800 and "primary rate limit" in failure.value.detail


def test_bad_credentials_never_show_the_token(github: GitHubEmulator) -> None:
    wrong = "ghp_wrong" + "x" * 30
    with pytest.raises(UpstreamError) as failure:
        ensure(host_for(github, token=wrong), make_spec(), skeleton_files())
    assert "credentials" in failure.value.detail and "(401)" in failure.value.detail
    assert wrong not in repr(failure.value.to_problem()) and GITHUB_TOKEN not in repr(failure.value.to_problem())
    assert wrong not in repr(host_for(github, token=wrong).connection)


@pytest.fixture
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_github_app_credentials_find_the_installation(github: GitHubEmulator, app_key: tuple[str, str]) -> None:
    private, public = app_key
    github.add_app("424242", public, installation_id=77, org=GITHUB_ORG)
    host = host_for(github, token=None, app_id="424242", app_private_key=private)
    result, _ = ensure(host, make_spec(), skeleton_files())
    assert result.commit_hash
    assert github.calls()["GET /orgs/{org}/installation"] == 1
    assert github.calls()["POST /app/installations/{installation_id}/access_tokens"] == 1


@pytest.fixture
def enterprise(github_spec: SpecCheck) -> Iterator[GitHubEmulator]:
    emulator = start_github(SpecCheck("ghes-3.19"), base_path="/api/v3")
    yield emulator
    emulator.stop()
    emulator.assert_clean()


def test_enterprise_server_base_url_and_internal_visibility(enterprise: GitHubEmulator) -> None:
    assert enterprise.api_url.endswith("/api/v3")
    spec = make_spec(visibility="internal")
    result, _ = ensure(host_for(enterprise), spec, skeleton_files())
    assert result.settings["visibility"] == "internal"
    assert enterprise.repos[(GITHUB_ORG, spec.name)].visibility == "internal"


def test_without_credentials_the_host_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="needs a token"):
        GitHubHost(GitHubConnection(), org=GITHUB_ORG)
