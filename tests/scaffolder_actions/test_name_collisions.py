"""No two services share a derived name: names Golden Path owns are injective, and every derived name is claimed
by its owner, so a clash is a 409 in the plan and in each action before anything is written (real OpenBao)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hvac
import hvac.exceptions
import pytest
from starlette.testclient import TestClient

from backend.embedded import EmbeddedOpenBao
from tests.conftest import API_TOKEN, VAULT_ACTION, unique, vault_input

PAYMENTS, LEDGER = "group:default/team-payments", "group:default/team-ledger"
NAMESPACES = "goldenpath:kubernetes:namespace:create"
REGISTER = "goldenpath:catalog:service:register"
REPOSITORY = "goldenpath:git:repository:create"
PLAN = "goldenpath:platform:service:plan"


def runs(action: str) -> str:
    return f"/api/v1/actions/{action}/runs"


@pytest.fixture
def root(openbao: EmbeddedOpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.token)


@pytest.fixture
def client(make_app: Callable[..., Any]) -> TestClient:
    # "eu-prod" ends with another environment's name: the namespace pattern {service}-{environment} then gives
    # service "x-eu" in prod and service "x" in eu-prod the same namespace; only the claims can tell them apart
    app, _ = make_app(policy={"environments": ["dev", "prod", "eu-prod"]},
                      kubernetes={"environments": {"dev": ["local"], "prod": ["local"], "eu-prod": ["local"]}})
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def token_with_policy(root: hvac.Client, policy: str) -> hvac.Client:
    token = root.auth.token.create(policies=[policy], no_default_policy=True, ttl="5m")["auth"]["client_token"]
    return hvac.Client(url=root.url, token=token)


def reads(client: hvac.Client, path: str) -> bool:
    try:
        client.secrets.kv.v2.read_secret_version(path, mount_point="secret", raise_on_deleted_version=False)
    except hvac.exceptions.Forbidden:
        return False
    return True


def test_systems_and_services_full_of_dashes_get_their_own_policies_and_roles(
    client: TestClient, root: hvac.Client
) -> None:
    tag = unique("t")
    first = vault_input(system=f"a-b-{tag}", service="c", owner=PAYMENTS)
    second = vault_input(system="a", service=f"b-{tag}-c", owner=LEDGER)
    # the old names, goldenpath-<env>-<system>-<service>-*, were equal for these two requests
    a = client.post(runs(VAULT_ACTION), json={"input": first})
    assert a.status_code == 201, a.text
    path_a = a.json()["output"]["paths"][0]
    role_a = root.auth.kubernetes.read_role(path_a["kubernetesRole"])
    b = client.post(runs(VAULT_ACTION), json={"input": second})
    assert b.status_code == 201, b.text
    path_b = b.json()["output"]["paths"][0]
    assert {path_a["workloadPolicy"], path_a["ownersPolicy"], path_a["kubernetesRole"]}.isdisjoint(
        {path_b["workloadPolicy"], path_b["ownersPolicy"], path_b["kubernetesRole"]})
    assert root.auth.kubernetes.read_role(path_a["kubernetesRole"]) == role_a
    owners_a = token_with_policy(root, path_a["ownersPolicy"])
    assert reads(owners_a, path_a["path"]) and not reads(owners_a, path_b["path"])
    workload_b = token_with_policy(root, path_b["workloadPolicy"])
    assert reads(workload_b, path_b["path"]) and not reads(workload_b, path_a["path"])


def test_a_service_name_belongs_to_one_team_in_every_action_and_the_plan(client: TestClient) -> None:
    service = unique("svc")
    taken = client.post(runs(VAULT_ACTION), json={"input": vault_input(service=service, owner=PAYMENTS)})
    assert taken.status_code == 201, taken.text
    other = {"service": service, "system": "ledger", "owner": LEDGER, "costCenter": "cc-1", "environments": ["dev"]}
    for action, body in ((VAULT_ACTION, other), (NAMESPACES, other), (REGISTER, {**other, "description": "x"}),
                         (REPOSITORY, {"name": service, "system": "ledger", "owner": LEDGER, "description": "x"})):
        answer = client.post(runs(action), json={"input": body})
        assert answer.status_code == 409, (action, answer.text)
        assert answer.json()["owner"] == PAYMENTS
    plan = client.post(runs(PLAN), json={"input": {**other, "description": "x"}})
    assert plan.status_code == 422, plan.text
    assert any(e["rule"] == "name-available" and PAYMENTS in e["message"] for e in plan.json()["errors"])


def test_a_namespace_two_services_would_share_is_refused_before_any_write(
    client: TestClient, root: hvac.Client
) -> None:
    tag = unique("x")
    first = vault_input(service=f"{tag}-eu", owner=PAYMENTS, environments=["prod"])
    made = client.post(runs(VAULT_ACTION), json={"input": first})
    assert made.status_code == 201, made.text
    assert made.json()["output"]["paths"][0]["namespace"] == f"{tag}-eu-prod"
    role = made.json()["output"]["paths"][0]["kubernetesRole"]
    bound = root.auth.kubernetes.read_role(role)
    second = vault_input(service=tag, owner=LEDGER, environments=["eu-prod"])  # also makes "<tag>-eu-prod"
    policies = set(root.sys.list_policies()["data"]["policies"])
    namespaces = {k: v for k, v in second.items() if k != "secretKeys"}
    for action, body in ((VAULT_ACTION, second), (NAMESPACES, namespaces)):
        answer = client.post(runs(action), json={"input": body})
        assert answer.status_code == 409, answer.text
        assert f"{tag}-eu-prod" in answer.json()["detail"]
    plan = client.post(runs(PLAN), json={"input": {**namespaces, "description": "x"}})
    assert plan.status_code == 422, plan.text
    assert any(e["rule"] == "name-available" for e in plan.json()["errors"])
    assert set(root.sys.list_policies()["data"]["policies"]) == policies
    assert root.auth.kubernetes.read_role(role) == bound
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.read_secret_metadata(f"eu-prod/payments/{tag}", mount_point="secret")


def test_a_dry_run_checks_the_claims_but_holds_none(client: TestClient) -> None:
    service = unique("svc")
    dry = client.post(runs(VAULT_ACTION), json={"input": vault_input(service=service, owner=LEDGER), "dryRun": True})
    assert dry.status_code == 201, dry.text
    real = client.post(runs(VAULT_ACTION), json={"input": vault_input(service=service, owner=PAYMENTS)})
    assert real.status_code == 201, real.text  # the dry-run did not reserve the name for team-ledger
