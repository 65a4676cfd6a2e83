"""What the secrets action promises besides least privilege, on the real OpenBao through the real API: the
Kubernetes auth role binds exactly the workload it is given, a second run writes nothing, drift is put back, a path
that is not this team's is refused before anything is written, and the metadata says who owns the path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hvac
import pytest
from starlette.testclient import TestClient

from backend.embedded import EmbeddedOpenBao
from backend.providers.vault import duration_seconds
from tests.conftest import unique, vault_input
from tests.guarantees.secrets_bench import MOUNT, RUNS, app_client, metadata, policy_rules, role, root_client

PAYMENTS = "group:default/team-payments"


@pytest.fixture
def root(openbao: EmbeddedOpenBao) -> hvac.Client:
    return root_client(openbao)


@pytest.fixture
def client(openbao: EmbeddedOpenBao, tmp_path: Path) -> TestClient:
    return app_client(openbao, tmp_path)


def _run(client: TestClient, data: dict[str, Any], **body: Any) -> dict[str, Any]:
    answer = client.post(RUNS, json={"input": data, **body})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _binding(found: dict[str, Any] | None) -> dict[str, Any]:
    assert found is not None
    return {key: found[key] for key in ("bound_service_account_names", "bound_service_account_namespaces",
                                        "token_policies", "policies", "token_ttl")}


def _state(root: hvac.Client, paths: list[dict[str, Any]]) -> list[Any]:
    """Everything a run can write in Vault for these outputs: metadata (versions, times), policies, roles."""
    return [(metadata(root, p["path"]), policy_rules(root, p["workloadPolicy"]), policy_rules(root, p["ownersPolicy"]),
             role(root, p["kubernetesRole"])) for p in paths]


def _values(root: hvac.Client, paths: list[dict[str, Any]]) -> list[Any]:
    return [root.secrets.kv.v2.read_secret_version(p["path"], mount_point=MOUNT, raise_on_deleted_version=True)["data"]
            for p in paths]


# -- the Kubernetes auth role -----------------------------------------------------------------------------------------

def test_the_role_binds_exactly_the_given_workload_to_the_workload_policy_with_the_configured_ttl(
    openbao: EmbeddedOpenBao, root: hvac.Client, tmp_path: Path,
) -> None:
    client = app_client(openbao, tmp_path, policy={"allow_workload_overrides": True},
                        vault={"role_token_ttl": "15m"})
    namespace, account = unique("given-ns"), unique("given-sa")
    output = _run(client, vault_input(environments=["dev", "prod"], namespace=namespace,
                                      serviceAccount=account))["output"]
    for path in output["paths"]:
        assert (path["namespace"], path["serviceAccount"]) == (namespace, account)
        assert _binding(role(root, path["kubernetesRole"])) == {
            "bound_service_account_names": [account], "bound_service_account_namespaces": [namespace],
            "token_policies": [path["workloadPolicy"]], "policies": [path["workloadPolicy"]], "token_ttl": 900}
    dev, prod = output["paths"]
    assert len({dev["workloadPolicy"], dev["ownersPolicy"], prod["workloadPolicy"], prod["ownersPolicy"]}) == 4
    assert dev["kubernetesRole"] != prod["kubernetesRole"]


def test_by_default_the_role_binds_the_platforms_service_account_in_each_environments_namespace(
    client: TestClient, root: hvac.Client,
) -> None:
    data = vault_input(environments=["dev", "prod"])
    for env, path in zip(("dev", "prod"), _run(client, data)["output"]["paths"], strict=True):
        assert _binding(role(root, path["kubernetesRole"])) == {
            "bound_service_account_names": [data["service"]],
            "bound_service_account_namespaces": [f"{data['service']}-{env}"],
            "token_policies": [path["workloadPolicy"]], "policies": [path["workloadPolicy"]], "token_ttl": 3600}


# -- convergence ------------------------------------------------------------------------------------------------------

def test_a_second_run_writes_nothing(client: TestClient, root: hvac.Client) -> None:
    data = vault_input(environments=["dev", "prod"], secretKeys=["DATABASE_PASSWORD", "API_KEY"])
    first = _run(client, data)
    before = _state(root, first["output"]["paths"])
    values = _values(root, first["output"]["paths"])
    second = _run(client, data)
    assert _state(root, first["output"]["paths"]) == before  # no new KV version, no metadata, policy or role write
    assert _values(root, first["output"]["paths"]) == values
    assert {change["outcome"] for change in second["changes"]} == {"unchanged"}
    assert second["output"]["changed"] is False and second["output"]["paths"] == first["output"]["paths"]


def test_a_dry_run_writes_nothing_in_vault(client: TestClient, root: hvac.Client) -> None:
    planned = _run(client, vault_input(environments=["dev", "prod"]), dryRun=True)
    assert {(c["kind"], c["outcome"]) for c in planned["changes"]} >= {
        ("vault.secret-path", "created"), ("vault.policy", "created"), ("vault.kubernetes-role", "created")}
    for found in _state(root, planned["output"]["paths"]):
        assert found == (None, None, None, None)


def test_drift_in_each_part_of_the_role_and_in_the_policies_is_put_back(client: TestClient, root: hvac.Client) -> None:
    data = vault_input()
    [path] = _run(client, data)["output"]["paths"]
    name, wanted = path["kubernetesRole"], _binding(role(root, path["kubernetesRole"]))
    drifts = {"bound_service_account_names": ["default"], "bound_service_account_namespaces": ["kube-system"],
              "policies": [path["workloadPolicy"], path["ownersPolicy"]], "ttl": "24h"}
    for field, value in drifts.items():
        current = {"bound_service_account_names": wanted["bound_service_account_names"],
                   "bound_service_account_namespaces": wanted["bound_service_account_namespaces"],
                   "policies": wanted["token_policies"], "ttl": "1h", field: value}
        root.auth.kubernetes.create_role(name, mount_point="kubernetes", **current)
        again = _run(client, data)
        assert ("vault.kubernetes-role", "updated") in {(c["kind"], c["outcome"]) for c in again["changes"]}, field
        assert _binding(role(root, name)) == wanted, field
    for policy in (path["workloadPolicy"], path["ownersPolicy"]):
        rules = policy_rules(root, policy)
        root.sys.create_or_update_policy(policy, f'path "{MOUNT}/data/*" {{\n  capabilities = ["read", "list"]\n}}\n')
        assert any(c["locator"] == policy and c["outcome"] == "updated" for c in _run(client, data)["changes"])
        assert policy_rules(root, policy) == rules


def test_a_new_key_is_added_and_the_owners_values_are_kept(client: TestClient, root: hvac.Client) -> None:
    data = vault_input()
    [path] = _run(client, data)["output"]["paths"]
    root.secrets.kv.v2.patch(path["path"], secret={"DATABASE_PASSWORD": "set-by-owner"}, mount_point=MOUNT)
    _run(client, {**data, "secretKeys": ["DATABASE_PASSWORD", "API_KEY"]})
    values = root.secrets.kv.v2.read_secret_version(path["path"], mount_point=MOUNT, raise_on_deleted_version=True)
    assert values["data"]["data"]["DATABASE_PASSWORD"] == "set-by-owner"
    assert len(values["data"]["data"]["API_KEY"]) >= 32


# -- metadata ---------------------------------------------------------------------------------------------------------

def test_the_metadata_names_owner_and_provenance_and_provenance_is_written_once(
    openbao: EmbeddedOpenBao, root: hvac.Client, tmp_path: Path,
) -> None:
    client = app_client(openbao, tmp_path, vault={"max_versions": 4})
    data = vault_input(environments=["dev"])
    [path] = _run(client, data, context={"templateRef": "template:default/golden-path"})["output"]["paths"]
    expected = {"owner": PAYMENTS, "owner-team": "team-payments", "system": "payments", "service": data["service"],
                "environment": "dev", "cost-center": "cc-1234", "managed-by": "goldenpath",
                "source-template": "template:default/golden-path", "created-by": "token:default"}
    found = metadata(root, path["path"])
    assert found is not None and found["custom_metadata"] == expected and found["max_versions"] == 4
    # a later run from another template, for another cost center: the cost center follows, the provenance stays
    _run(client, {**data, "costCenter": "cc-9999"}, context={"templateRef": "template:default/other"})
    found = metadata(root, path["path"])
    assert found is not None and found["custom_metadata"] == {**expected, "cost-center": "cc-9999"}


# -- ownership: refused before anything is written -------------------------------------------------------------------

@pytest.mark.parametrize("made_by", ["another team", "outside golden path"])
def test_a_path_that_is_not_ours_in_any_environment_is_refused_before_anything_is_written(
    client: TestClient, root: hvac.Client, made_by: str,
) -> None:
    data = vault_input(environments=["dev", "prod"])
    taken = f"prod/payments/{data['service']}"
    if made_by == "another team":
        root.secrets.kv.v2.update_metadata(taken, mount_point=MOUNT, custom_metadata={
            "owner": "group:default/team-ledger", "managed-by": "goldenpath"})
    root.secrets.kv.v2.create_or_update_secret(taken, secret={"THEIRS": "value"}, mount_point=MOUNT)
    before = metadata(root, taken)
    answer = client.post(RUNS, json={"input": data})
    assert answer.status_code == 409, answer.text
    if made_by == "another team":
        assert answer.json()["owner"] == "group:default/team-ledger"
    else:
        assert "not managed by Golden Path" in answer.json()["detail"]
    assert metadata(root, taken) == before
    names = [f"goldenpath.{env}.payments.{data['service']}" for env in ("dev", "prod")]
    for name in names:
        assert (policy_rules(root, f"{name}.workload"), policy_rules(root, f"{name}.owners"), role(root, name)) == (
            None, None, None)
    assert metadata(root, f"dev/payments/{data['service']}") is None


def test_on_a_new_mount_the_ownership_check_finds_the_path_free(
    openbao: EmbeddedOpenBao, root: hvac.Client, tmp_path: Path,
) -> None:
    mount = unique("kv")
    client = app_client(openbao, tmp_path, vault={"kv_mount": mount, "create_kv_mount": True})
    [path] = _run(client, vault_input())["output"]["paths"]
    assert root.sys.list_mounted_secrets_engines()["data"][f"{mount}/"]["options"]["version"] == "2"
    assert root.secrets.kv.v2.read_secret_metadata(path["path"], mount_point=mount)["data"]["current_version"] == 1


@pytest.mark.parametrize(("written", "seconds"), [("45", 45), ("45s", 45), ("15m", 900), ("1h", 3600), ("2d", 172800)])
def test_role_ttls_are_compared_in_seconds(written: str, seconds: int) -> None:
    """Vault answers a role's TTL in seconds: the configured duration must be read the same way, or every run would
    rewrite the role (or never notice a changed TTL)."""
    assert duration_seconds(written) == seconds


@pytest.mark.parametrize("written", ["", "1h30m", "-5m", "5w", "1.5h"])
def test_a_ttl_that_is_not_a_duration_is_refused(written: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds(written)
