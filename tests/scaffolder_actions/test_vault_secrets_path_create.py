"""The Vault action through the REST API against a real OpenBao: convergence, dry-run, conflicts, policy."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest
from starlette.testclient import TestClient

from backend.embedded import EmbeddedOpenBao
from tests.conftest import VAULT_ACTION, vault_input

RUNS = f"/api/v1/actions/{VAULT_ACTION}/runs"


@pytest.fixture
def root(openbao: EmbeddedOpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.token)


def test_first_run_creates_everything_second_run_changes_nothing(client: TestClient, root: hvac.Client) -> None:
    data = vault_input(environments=["dev", "prod"])
    first = client.post(RUNS, json={"input": data, "context": {"templateRef": "template:default/golden-path"}})
    assert first.status_code == 201, first.text
    output = first.json()["output"]
    assert output["changed"] is True
    assert [p["path"] for p in output["paths"]] == [f"{env}/payments/{data['service']}" for env in ("dev", "prod")]
    dev = output["paths"][0]
    assert dev["namespace"] == f"{data['service']}-dev" and dev["serviceAccount"] == data["service"]
    role = root.auth.kubernetes.read_role(dev["kubernetesRole"])
    assert role["bound_service_account_namespaces"] == [dev["namespace"]]
    assert role["token_policies"] == [dev["workloadPolicy"]]
    meta = root.secrets.kv.v2.read_secret_metadata(dev["path"], mount_point="secret")["data"]
    assert meta["custom_metadata"]["source-template"] == "template:default/golden-path"
    assert meta["custom_metadata"]["cost-center"] == "cc-1234"
    version = meta["current_version"]

    second = client.post(RUNS, json={"input": data})
    assert second.status_code == 201
    assert second.json()["output"]["changed"] is False
    assert {c["outcome"] for c in second.json()["changes"]} == {"unchanged"}
    assert second.json()["output"]["paths"] == output["paths"]
    meta_after = root.secrets.kv.v2.read_secret_metadata(dev["path"], mount_point="secret")["data"]
    assert (meta_after["current_version"], meta_after["updated_time"]) == (version, meta["updated_time"])


def test_dry_run_returns_the_plan_and_writes_nothing(client: TestClient, root: hvac.Client) -> None:
    data = vault_input()
    response = client.post(RUNS, json={"input": data, "dryRun": True})
    assert response.status_code == 201, response.text
    planned = {(c["kind"], c["outcome"]) for c in response.json()["changes"]}
    assert ("vault.secret-path", "created") in planned and ("vault.policy", "created") in planned
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.read_secret_metadata(f"dev/payments/{data['service']}", mount_point="secret")
    assert client.get("/api/v1/audit").json()["items"] == []


def test_a_path_owned_by_another_team_is_409_naming_the_owner(client: TestClient) -> None:
    data = vault_input()
    assert client.post(RUNS, json={"input": data}).status_code == 201
    taken = client.post(RUNS, json={"input": {**data, "owner": "group:default/team-other"}})
    assert taken.status_code == 409
    problem = taken.json()
    assert problem["owner"] == "group:default/team-payments"
    assert "team-payments" in problem["detail"] and problem["runId"]
    assert taken.headers["content-type"] == "application/problem+json"


def test_an_environment_outside_policy_is_422_naming_the_rule_and_field(client: TestClient) -> None:
    response = client.post(RUNS, json={"input": vault_input(environments=["dev", "qa"])})
    assert response.status_code == 422
    problem = response.json()
    assert problem["rule"] == "allowed-environments"
    assert problem["errors"] == [{"field": "environments.1", "rule": "allowed-environments",
                                  "message": "environment 'qa' is not one of dev, staging, prod"}]
    assert problem["detail"] == "environments.1: environment 'qa' is not one of dev, staging, prod"


def test_run_record_and_audit_trail_tell_who_asked_for_what(client: TestClient) -> None:
    data = vault_input()
    run = client.post(RUNS, json={"input": data, "context": {"user": "user:default/jane", "taskId": "t-1"}}).json()
    fetched = client.get(f"/api/v1/runs/{run['id']}").json()
    # a static token has no person behind it: the user it names is kept as a claim, never as who asked
    assert fetched["requestedBy"] is None and fetched["caller"] == "token:default"
    assert fetched["context"] == {"user": "user:default/jane", "taskId": "t-1"}
    assert any("vault.secret-path" in line["message"] for line in fetched["log"])
    [event] = client.get("/api/v1/audit", params={"actionId": VAULT_ACTION}).json()["items"]
    assert event["run_id"] == run["id"] and event["actor_user"] is None
    assert (event["actor_caller"], event["actor_claim"]) == ("token:default", "user:default/jane")
    assert {c["kind"] for c in event["changes"]} >= {"vault.secret-path", "vault.policy", "vault.kubernetes-role"}
    inventory = client.get("/api/v1/inventory", params={"service": data["service"]}).json()["items"]
    assert [r["locator"] for r in inventory] == [f"secret/dev/payments/{data['service']}"]
