"""The plan action through the REST API, against the real backends the other actions write to (local git,
OpenBao, GitOps, the Kubernetes emulator, the GitHub emulator): every problem at once, naming field and rule;
what will be made; nothing written, ever."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests
from starlette.testclient import TestClient

from backend.embedded import EmbeddedOpenBao
from tests.conftest import API_TOKEN, GITHUB_ORG, github_settings, unique
from tests.github_emulator import GitHubEmulator
from tests.k8s_emulator import KubeEmulator
from tests.scaffolder_actions.provisioning import provision

PLAN = "goldenpath:platform:service:plan"
RUNS = f"/api/v1/actions/{PLAN}/runs"
OWNER = "group:default/team-payments"


def plan_input(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"service": unique("svc"), "system": "payments", "owner": OWNER,
                            "costCenter": "cc-1234", "environments": ["dev", "prod"], "description": "Payments",
                            "tier": "small", "visibility": "private"}
    data.update(overrides)
    return data


@pytest.fixture
def client(make_app: Callable[..., Any]) -> TestClient:
    app, _ = make_app(repositories={"org": "acme"}, policy={"cost_center_pattern": r"cc-[0-9]{4}"})
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def errors_of(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "https://goldenpath.dev/problems/policy-violation"
    assert problem["rule"] == problem["errors"][0]["rule"]
    return sorted((e["field"], e["rule"]) for e in problem["errors"])


def test_a_new_service_plans_every_resource_and_writes_nothing(
    client: TestClient, openbao: EmbeddedOpenBao, gitops_dir: Path,
) -> None:
    data = plan_input()
    response = client.post(RUNS, json={"input": data})
    assert response.status_code == 201, response.text
    output = response.json()["output"]
    service = data["service"]
    assert output["entityRef"] == f"component:default/{service}"
    assert [(r["kind"], r["locator"], r["environment"], r["status"]) for r in output["resources"]] == [
        ("repository", f"acme/{service}", None, "new"),
        ("vault.secrets-path", f"secret/dev/payments/{service}", "dev", "new"),
        ("kubernetes.namespace", f"local/{service}-dev", "dev", "new"),
        ("vault.secrets-path", f"secret/prod/payments/{service}", "prod", "new"),
        ("kubernetes.namespace", f"local/{service}-prod", "prod", "new"),
        ("catalog.component", f"component:default/{service}", None, "new"),
    ]
    assert output["summary"] == "6 of 6 resources to create, 0 already in place"
    assert response.json()["changes"] == [] and response.json()["resources"] == []

    vault = hvac.Client(url=openbao.addr, token=openbao.token)
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.secrets.kv.v2.read_secret_metadata(f"dev/payments/{service}", mount_point="secret")
    assert not (gitops_dir.parent / "git" / "acme" / f"{service}.git").exists()
    assert not (gitops_dir / "local-work" / "clusters" / "local" / "namespaces" / f"{service}-dev").exists()
    assert [i for i in client.get("/api/v1/inventory").json()["items"] if i["service"] == service] == []


def test_after_provisioning_the_same_plan_finds_everything_in_place(client: TestClient) -> None:
    service = unique("svc")
    provision(client, service, costCenter="cc-1234")
    response = client.post(RUNS, json={"input": plan_input(service=service)})
    assert response.status_code == 201, response.text
    assert {r["status"] for r in response.json()["output"]["resources"]} == {"ours"}
    assert response.json()["output"]["summary"] == "0 of 6 resources to create, 6 already in place"


def test_every_rule_broken_at_once_is_one_answer_naming_each_field(client: TestClient) -> None:
    response = client.post(RUNS, json={"input": plan_input(
        environments=["dev", "qa"], tier="huge", visibility="public", costCenter="finance")})
    assert errors_of(response) == [
        ("costCenter", "cost-center-format"), ("environments.1", "allowed-environments"),
        ("tier", "allowed-tiers"), ("visibility", "allowed-visibilities")]
    assert response.json()["detail"].startswith("4 problems: ")


@pytest.mark.parametrize(("service", "rule"), [("goldenpath", "reserved-names"), ("a" * 60, "derived-names")])
def test_names_the_platform_refuses(client: TestClient, service: str, rule: str) -> None:
    assert ("service", rule) in errors_of(client.post(RUNS, json={"input": plan_input(service=service)}))


def test_a_naming_rule_from_configuration(make_app: Callable[..., Any]) -> None:
    app, _ = make_app(policy={"service_pattern": r"[a-z]+-(api|web|worker)"})
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert errors_of(client.post(RUNS, json={"input": plan_input(service="payments")})) == [
        ("service", "service-naming")]
    assert client.post(RUNS, json={"input": plan_input(service="payments-api")}).status_code == 201


def test_resources_another_team_holds_are_each_a_problem(client: TestClient) -> None:
    service = unique("svc")
    provision(client, service, costCenter="cc-1234")
    response = client.post(RUNS, json={"input": plan_input(service=service, owner="group:default/team-ledger")})
    assert errors_of(response) == [("service", "component-available"), ("service", "name-available"),
                                   ("service", "namespace-available"),
                                   ("service", "namespace-available"), ("service", "repository-available"),
                                   ("service", "secrets-path-available"), ("service", "secrets-path-available")]
    details = [e["message"] for e in response.json()["errors"]]
    assert f"repository acme/{service} is owned by {OWNER}" in details
    assert f"service {service!r} is owned by {OWNER}" in details
    assert f"secrets path secret/dev/payments/{service} is owned by {OWNER}" in details


def test_a_namespace_made_outside_golden_path_is_a_problem(make_app: Callable[..., Any], kube: KubeEmulator) -> None:
    app, _ = make_app(kubernetes={"clusters": {"eu": {"mode": "direct", "server": kube.url}},
                                  "environments": {"dev": ["eu"]}})
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    service = unique("svc")
    made = requests.post(f"{kube.url}/api/v1/namespaces", timeout=5, json={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{service}-dev"}})
    assert made.ok, made.text
    before = len(kube.requests())
    response = client.post(RUNS, json={"input": plan_input(service=service, environments=["dev", "prod"])})
    assert errors_of(response) == [("environments.1", "environment-clusters"), ("service", "namespace-available")]
    assert kube.writes(before) == []
    assert "is not managed by Golden Path" in str(response.json()["errors"])


def test_with_github_a_missing_team_and_a_foreign_repository(
    make_app: Callable[..., Any], github: GitHubEmulator,
) -> None:
    app, _ = make_app(**github_settings(github))
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    missing = client.post(RUNS, json={"input": plan_input(owner="group:default/team-nobody")})
    assert errors_of(missing) == [("owner", "owner-team-exists")]

    service = unique("svc")
    github.create_repo({"org": GITHUB_ORG}, {"name": service, "auto_init": True}, {}, "someone")
    writes = github.writes
    taken = client.post(RUNS, json={"input": plan_input(service=service)})
    assert errors_of(taken) == [("service", "repository-available")]
    assert "was not created by Golden Path" in taken.json()["detail"]
    assert github.writes == writes


def test_the_plan_is_published_read_only_so_backstage_dry_runs_run_it(client: TestClient) -> None:
    action = client.get(f"/api/v1/actions/{PLAN}").json()
    assert action["attributes"] == {"readOnly": True, "idempotent": True, "destructive": False}
    assert action["supportsDryRun"] is True
    dry = client.post(RUNS, json={"input": plan_input(), "dryRun": True})
    assert dry.status_code == 201 and dry.json()["status"] == "succeeded"


STEPS = {"goldenpath:vault:secrets-path:create": {"secretKeys": ["API_KEY"]},
         "goldenpath:kubernetes:namespace:create": {"tier": "small"},
         "goldenpath:catalog:service:register": {"description": "Payments"}}


@pytest.mark.parametrize(("overrides", "rule"), [
    ({"environments": ["dev", "qa"]}, "allowed-environments"),
    ({"environments": ["staging"]}, "environment-clusters"),
    ({"costCenter": "finance"}, "cost-center-format"),
    ({"service": "vault"}, "reserved-names"),
    ({"service": "s" * 60}, "derived-names"),
])
def test_what_the_plan_refuses_every_step_refuses_before_writing(
    make_app: Callable[..., Any], overrides: dict[str, Any], rule: str,
) -> None:
    app, services = make_app(policy={"cost_center_pattern": r"cc-[0-9]{4}"},
                             kubernetes={"environments": {"dev": ["local"], "prod": ["local"]}})
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    data = plan_input(**overrides)
    assert rule in {r for _, r in errors_of(client.post(RUNS, json={"input": data}))}
    common = {k: data[k] for k in ("service", "system", "owner", "costCenter", "environments")}
    for action, extra in STEPS.items():
        response = client.post(f"/api/v1/actions/{action}/runs", json={"input": {**common, **extra}})
        assert rule in {r for _, r in errors_of(response)}, action
        assert response.json()["runId"] and not client.get(f"/api/v1/runs/{response.json()['runId']}").json()[
            "changes"]
    assert services.stores.inventory.list(service=data["service"]) == []
