"""Guarantees of the repository action through the REST API, on the GitHub emulator: what a request that says
little gets (private, protected with code-owner review enforced on admins, the owning team at `maintain`), each
protection rule reaching GitHub as asked, and a settings write GitHub did not apply failing the run with a 502
that names the setting, with the run recorded as failed and audited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from connexion import FlaskApp
from starlette.testclient import TestClient

from backend.app import Services
from tests.conftest import API_TOKEN, GITHUB_ORG, github_settings, unique
from tests.github_emulator import GitHubEmulator

RUNS = "/api/v1/actions/goldenpath:git:repository:create/runs"
AppFactory = Callable[..., tuple[FlaskApp, Services]]


@pytest.fixture
def client(make_app: AppFactory, github: GitHubEmulator) -> TestClient:
    app, _ = make_app(**github_settings(github))
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def minimal(**overrides: Any) -> dict[str, Any]:
    return {"name": unique("svc"), "description": "Payments API", "owner": "group:default/team-payments",
            "system": "payments", **overrides}


def test_what_a_request_that_says_little_gets(client: TestClient, github: GitHubEmulator) -> None:
    data = minimal()
    answer = client.post(RUNS, json={"input": data})
    assert answer.status_code == 201, answer.text
    repo = github.repos[(GITHUB_ORG, data["name"])]
    assert repo.visibility == "private" and repo.default_branch == "main"
    assert github.orgs[GITHUB_ORG].team_repos["team-payments"][data["name"]] == "maintain"
    assert github.orgs[GITHUB_ORG].team_repos["team-ledger"].get(data["name"]) is None
    assert repo.collaborators == {} and repo.invitations == {}
    assert repo.protection == {}  # GitHub offers rulesets: the default branch is protected by one
    [ruleset] = repo.rulesets.values()
    assert (ruleset["enforcement"], ruleset["bypass_actors"], ruleset["conditions"]) == (
        "active", [], {"ref_name": {"include": ["refs/heads/main"], "exclude": []}})
    assert ruleset["rules"] == [{"type": "deletion"}, {"type": "non_fast_forward"}, {
        "type": "pull_request", "parameters": {
        "required_approving_review_count": 1, "dismiss_stale_reviews_on_push": True, "require_code_owner_review": True,
        "require_last_push_approval": False, "required_review_thread_resolution": True}}]
    settings = answer.json()["output"]["settings"]
    assert (settings["visibility"], settings["teams"], settings["codeowners"]) == (
        "private", {"team-payments": "maintain"}, "valid")
    marker = yaml.safe_load(github.files(GITHUB_ORG, data["name"])[".goldenpath.yaml"])
    assert (marker["owner"], marker["team"]) == ("group:default/team-payments", "team-payments")


def test_each_protection_rule_reaches_github_as_asked(client: TestClient, github: GitHubEmulator) -> None:
    data = minimal(protection={"requiredApprovingReviews": 2, "requireCodeOwnerReviews": True,
                               "dismissStaleReviews": False, "requiredStatusChecks": ["lint", "ci"],
                               "enforceAdmins": False, "requiredLinearHistory": True,
                               "requiredConversationResolution": False, "mode": "classic"}, teamPermission="push",
                   defaultBranch="trunk", topics=["payments"])
    answer = client.post(RUNS, json={"input": data})
    assert answer.status_code == 201, answer.text
    repo = github.repos[(GITHUB_ORG, data["name"])]
    assert (repo.visibility, repo.default_branch, repo.topics) == ("private", "trunk", ["payments"])
    assert github.orgs[GITHUB_ORG].team_repos["team-payments"][data["name"]] == "push"
    assert repo.protection == {"trunk": {
        "required_status_checks": {"strict": True, "contexts": ["ci", "lint"]}, "enforce_admins": False,
        "required_pull_request_reviews": {"dismiss_stale_reviews": False, "require_code_owner_reviews": True,
                                          "required_approving_review_count": 2},
        "restrictions": None, "required_linear_history": True, "allow_force_pushes": False,
        "allow_deletions": False, "required_conversation_resolution": False}}


def test_skeleton_values_cannot_name_another_owner_or_org(client: TestClient, github: GitHubEmulator) -> None:
    data = minimal(values={"owner": "group:default/team-ledger", "owner_team": "team-ledger", "org": "evil",
                           "name": "other", "default_branch": "evil"})
    answer = client.post(RUNS, json={"input": data})
    assert answer.status_code == 201, answer.text
    files = github.files(GITHUB_ORG, data["name"])
    marker = yaml.safe_load(files[".goldenpath.yaml"])
    assert (marker["owner"], marker["team"]) == ("group:default/team-payments", "team-payments")
    assert files["CODEOWNERS"].decode().strip().endswith(f"@{GITHUB_ORG}/team-payments")
    assert github.orgs[GITHUB_ORG].team_repos["team-ledger"].get(data["name"]) is None


@pytest.mark.parametrize(("setting", "method", "template"), [
    ("protection", "PUT", "/repos/{owner}/{repo}/branches/{branch}/protection"),
    ("protection", "POST", "/repos/{owner}/{repo}/rulesets"),
    ("teams", "PUT", "/orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}"),
    ("topics", "PUT", "/repos/{owner}/{repo}/topics"),
    ("collaborator alice", "PUT", "/repos/{owner}/{repo}/collaborators/{username}"),
], ids=["protection", "ruleset", "teams", "topics", "collaborator"])
def test_a_write_github_did_not_apply_is_a_502_naming_it(client: TestClient, github: GitHubEmulator, setting: str,
                                                          method: str, template: str) -> None:
    data = minimal(topics=["payments"], collaborators=[{"username": "alice", "permission": "push"}])
    if template.endswith("/protection"):
        data["protection"] = {"mode": "classic"}
    github.ignore(method, template)
    answer = client.post(RUNS, json={"input": data})
    assert answer.status_code == 502, answer.text
    problem = answer.json()
    assert f"GitHub did not apply the {setting} of {GITHUB_ORG}/{data['name']}" in problem["detail"]
    assert (problem["provider"], problem["retryable"]) == ("github", False)
    assert client.get(f"/api/v1/runs/{problem['runId']}").json()["status"] == "failed"
    event = next(e for e in client.get("/api/v1/audit").json()["items"] if e["run_id"] == problem["runId"])
    assert event["result"] == "failed" and event["changes"][-1]["kind"] == f"repository.{setting}"


def test_a_visibility_change_github_did_not_apply_is_a_502_naming_it(client: TestClient,
                                                                      github: GitHubEmulator) -> None:
    data = minimal()
    assert client.post(RUNS, json={"input": data}).status_code == 201
    github.repos[(GITHUB_ORG, data["name"])].visibility = "public"  # someone opened it up
    github.ignore("PATCH", "/repos/{owner}/{repo}")
    answer = client.post(RUNS, json={"input": data})
    assert answer.status_code == 502, answer.text
    detail = answer.json()["detail"]
    assert f"GitHub did not apply the repository of {GITHUB_ORG}/{data['name']}" in detail
    assert "visibility: private" in detail and "visibility: public" in detail  # asked for, and in force
    assert client.post(RUNS, json={"input": data}).status_code == 201  # GitHub applies it now: restored
    assert github.repos[(GITHUB_ORG, data["name"])].visibility == "private"
