"""The repository action through the REST API with the github provider, against the spec-checked emulator:
publish:github's outputs, evidence in the audit trail and inventory, problems for refusals and rate limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from connexion import FlaskApp
from starlette.testclient import TestClient

from backend.app import Services
from tests.conftest import API_TOKEN, GITHUB_ORG, github_settings, start_github, unique
from tests.github_emulator import GitHubEmulator, SpecCheck

RUNS = "/api/v1/actions/goldenpath:git:repository:create/runs"
AppFactory = Callable[..., tuple[FlaskApp, Services]]


def repo_input(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": unique("svc"), "description": "Pays: \"things\" kind: Evil # x",
                            "owner": "group:default/team-payments", "system": "payments",
                            "topics": ["payments", "python"], "protection": {"requiredStatusChecks": ["ci"]},
                            "collaborators": [{"username": "alice", "permission": "push"}]}
    data.update(overrides)
    return data


def client_for(make_app: AppFactory, emulator: GitHubEmulator) -> tuple[TestClient, Services]:
    app, services = make_app(**github_settings(emulator))
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"}), services


def test_creates_the_repository_and_a_rerun_writes_nothing(make_app: AppFactory, github: GitHubEmulator) -> None:
    client, _ = client_for(make_app, github)
    data = repo_input()
    first = client.post(RUNS, json={"input": data})
    assert first.status_code == 201, first.text
    output = first.json()["output"]
    html = f"{github.web_url}/{GITHUB_ORG}/{data['name']}"
    assert {k: output[k] for k in ("remoteUrl", "repoContentsUrl", "provider")} == {
        "remoteUrl": f"{html}.git", "repoContentsUrl": f"{html}/blob/main", "provider": "github"}
    assert output["commitHash"] == github.repos[(GITHUB_ORG, data["name"])].refs["refs/heads/main"]
    assert output["settings"]["protection"]["requiredStatusChecks"] == ["ci"]
    assert output["settings"]["collaborators"] == {"alice": "write"}

    files = github.files(GITHUB_ORG, data["name"])
    assert len(github.history(GITHUB_ORG, data["name"])) == 1
    assert files["CODEOWNERS"].decode().strip().endswith(f"@{GITHUB_ORG}/team-payments")
    entity = yaml.safe_load(files["catalog-info.yaml"])
    assert entity["metadata"]["description"] == data["description"]
    assert entity["metadata"]["annotations"]["github.com/project-slug"] == f"{GITHUB_ORG}/{data['name']}"
    marker = yaml.safe_load(files[".goldenpath.yaml"])
    assert (marker["owner"], marker["team"]) == ("group:default/team-payments", "team-payments")

    writes = github.writes
    again = client.post(RUNS, json={"input": data}).json()
    assert github.writes == writes
    assert {c["outcome"] for c in again["changes"]} == {"unchanged"}

    events = client.get("/api/v1/audit").json()["items"]
    created = next(e for e in events if e["run_id"] == first.json()["id"])
    assert [c["kind"] for c in created["changes"]][:2] == ["repository.repo", "repository.topics"]
    inventory = client.get("/api/v1/inventory").json()["items"]
    assert any(r["locator"] == f"{GITHUB_ORG}/{data['name']}" and r["attributes"]["provider"] == "github"
               for r in inventory)


def test_a_missing_team_is_a_problem_naming_the_field(make_app: AppFactory, github: GitHubEmulator) -> None:
    client, _ = client_for(make_app, github)
    answer = client.post(RUNS, json={"input": repo_input(owner="group:default/team-nobody")})
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["rule"] == "owner-team-exists" and problem["errors"][0]["field"] == "owner"
    assert github.writes == 0


def test_rate_limit_beyond_the_budget_is_a_retryable_503(make_app: AppFactory, github: GitHubEmulator) -> None:
    client, _ = client_for(make_app, github)
    github.secondary_limit(times=1, retry_after=120)
    answer = client.post(RUNS, json={"input": repo_input()})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "120"
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["retryable"] is True and answer.json()["provider"] == "github"


def test_refused_protection_fails_the_run_with_evidence(make_app: AppFactory, github_spec: SpecCheck) -> None:
    emulator = start_github(github_spec, plan="free")
    try:
        client, _ = client_for(make_app, emulator)
        data = repo_input()
        answer = client.post(RUNS, json={"input": data})
        assert answer.status_code == 502
        problem = answer.json()
        assert "Upgrade to GitHub Pro" in problem["detail"] and problem["retryable"] is False
        run = client.get(f"/api/v1/runs/{problem['runId']}").json()
        assert run["status"] == "failed"
        event = next(e for e in client.get("/api/v1/audit").json()["items"] if e["run_id"] == problem["runId"])
        assert "repository.repo" in [c["kind"] for c in event["changes"]]  # what was done before it failed

        emulator.plan = "enterprise"  # the organisation upgrades; the same request now finishes the work
        retry = client.post(RUNS, json={"input": data})
        assert retry.status_code == 201, retry.text
        assert [c["kind"] for c in retry.json()["changes"] if c["outcome"] != "unchanged"] == [
            "repository.protection"]
    finally:
        emulator.stop()
    emulator.assert_clean()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"collaborators": [{"username": "-bad-"}]}, "collaborators.0.username"),
    ({"collaborators": [{"username": "alice", "permission": "owner"}]}, "collaborators.0.permission"),
])
def test_bad_collaborators_name_the_field(make_app: AppFactory, github: GitHubEmulator, overrides: dict[str, Any],
                                          field: str) -> None:
    client, _ = client_for(make_app, github)
    answer = client.post(RUNS, json={"input": repo_input(**overrides)})
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == [field]
