"""Day 2: change what Golden Path made behind its back (real OpenBao, local git, the Kubernetes emulator), check
the service, and see the status, the object and field, the audit event and the catalog annotation; a report
changes nothing, and a backend that cannot be read is `unknown`, never drift."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import hvac
import pytest
import requests
import yaml
from sqlalchemy import update
from starlette.testclient import TestClient

from backend.app import Services
from backend.embedded import EmbeddedOpenBao
from backend.store.models import Run
from tests.conftest import API_TOKEN, VAULT_ACTION
from tests.k8s_emulator import KubeEmulator

OWNER = "group:default/team-payments"
MEMBER_TOKEN = "member-" + secrets.token_hex(8)
STRANGER_TOKEN = "stranger-" + secrets.token_hex(8)
RUNS = "/api/v1/actions/{}/runs"
VERIFY = "goldenpath:platform:service:verify"


@pytest.fixture
def made(make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator) -> tuple[TestClient, Services]:
    app, services = make_app(
        kubernetes={"clusters": {"dev-eu": {"mode": "direct", "server": kube.url}},
                    "environments": {"dev": ["dev-eu"], "prod": ["dev-eu"]}},
        auth={"token": API_TOKEN, "static_tokens": [
            {"name": "member", "token": MEMBER_TOKEN, "groups": [OWNER]},
            {"name": "stranger", "token": STRANGER_TOKEN, "groups": ["group:default/team-ledger"]}]})
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"}), services


def provision(client: TestClient, service: str) -> None:
    common = {"service": service, "system": "payments", "owner": OWNER, "costCenter": "cc-1234",
              "environments": ["dev", "prod"]}
    for action, body in [
        ("goldenpath:git:repository:create", {"name": service, "description": "Payments", "owner": OWNER,
                                              "system": "payments"}),
        (VAULT_ACTION, {**common, "secretKeys": ["DATABASE_PASSWORD"]}),
        ("goldenpath:kubernetes:namespace:create", {**common, "tier": "small"}),
        ("goldenpath:catalog:service:register", {**common, "description": "Payments API"}),
    ]:
        answer = client.post(RUNS.format(action), json={"input": body})
        assert answer.status_code == 201, answer.text


def verify(client: TestClient, service: str) -> dict[str, Any]:
    answer = client.post(RUNS.format(VERIFY), json={"input": {"service": service}})
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["output"])


def resource(report: dict[str, Any], kind: str, environment: str | None = "dev") -> dict[str, Any]:
    [found] = [r for r in report["resources"] if r["kind"] == kind
               and (r["environment"] == environment or r["environment"] is None)]
    return found


def entity(client: TestClient, name: str) -> dict[str, Any]:
    documents = yaml.safe_load_all(client.get("/api/v1/catalog/entities.yaml").text)
    [found] = [d for d in documents if d and d["metadata"]["name"] == name]
    return dict(found)


def audit_results(client: TestClient) -> list[tuple[str, str]]:
    answer = client.get("/api/v1/audit", params={"limit": 1000, "actionId": "goldenpath:conformance"})
    assert answer.status_code == 200, answer.text
    events = answer.json()["items"]
    return [(e["result"], e["detail"]) for e in events if e["action_id"] == "goldenpath:conformance"]


def vault(openbao: EmbeddedOpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.token)


def kube_call(kube: KubeEmulator, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, kube.url + path, json=body, timeout=10, headers={
        "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"})
    response.raise_for_status()
    return response.json()


def test_what_was_made_is_conformant_and_the_catalog_says_so(made: tuple[TestClient, Services]) -> None:
    client, _ = made
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    report = verify(client, service)
    assert report["status"] == "conformant", report
    assert {r["kind"] for r in report["resources"]} == {"repository", "vault.secrets-path", "kubernetes.namespace",
                                                        "service"}
    assert all(r["status"] == "conformant" and r["findings"] == [] for r in report["resources"])
    annotations = entity(client, service)["metadata"]["annotations"]
    assert annotations["goldenpath.dev/conformance"] == "conformant"
    assert annotations["goldenpath.dev/checked-at"] == report["checkedAt"]
    namespace = entity(client, f"{service}.namespace.dev.dev-eu")["metadata"]["annotations"]
    assert namespace["goldenpath.dev/conformance"] == "conformant"
    assert audit_results(client) == []  # a first check that finds all well is no event
    stored = client.get(f"/api/v1/services/{service}/conformance")
    assert stored.status_code == 200 and stored.json() == report


def test_a_widened_vault_policy_is_drift_named_audited_shown_and_left_alone(
        made: tuple[TestClient, Services], openbao: EmbeddedOpenBao) -> None:
    client, _ = made
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    verify(client, service)
    etag = client.get("/api/v1/catalog/entities.yaml").headers["ETag"]
    assert verify(client, service)["status"] == "conformant"
    assert client.get("/api/v1/catalog/entities.yaml").headers["ETag"] == etag  # same status: same feed

    [policy] = [p for p in vault(openbao).sys.list_policies()["data"]["policies"]
                if service in p and "workload" in p and "dev" in p]
    widened = 'path "secret/*" { capabilities = ["read", "list"] }\n'
    vault(openbao).sys.create_or_update_policy(policy, widened)
    report = verify(client, service)
    assert report["status"] == "drifted"
    path = resource(report, "vault.secrets-path")
    assert path["status"] == "drifted"
    [finding] = path["findings"]
    expected = finding.pop("differences")
    assert finding == {"kind": "vault.policy", "locator": policy, "status": "drifted", "wouldBe": "updated",
                       "fields": ["rules"]}
    assert [(d["field"], d["actual"]) for d in expected] == [("rules", widened)]
    assert f"dev/payments/{service}" in expected[0]["expected"] and "list" not in expected[0]["expected"]
    assert all(r["status"] == "conformant" for r in report["resources"] if r is not path)
    assert vault(openbao).sys.read_policy(policy)["data"]["rules"] == widened  # a report repairs nothing
    assert client.get("/api/v1/catalog/entities.yaml").headers["ETag"] != etag
    assert entity(client, service)["metadata"]["annotations"]["goldenpath.dev/conformance"] == "drifted"
    assert entity(client, f"{service}.secrets.dev")["metadata"]["annotations"][
        "goldenpath.dev/conformance"] == "drifted"
    assert entity(client, f"{service}.secrets.prod")["metadata"]["annotations"][
        "goldenpath.dev/conformance"] == "conformant"
    assert [result for result, _ in audit_results(client)] == ["drifted", "drifted"]  # the path, the service

    verify(client, service)
    assert len(audit_results(client)) == 2  # still drifted: no new event

    rerun = client.post(RUNS.format(VAULT_ACTION), json={"input": {
        "service": service, "system": "payments", "owner": OWNER, "costCenter": "cc-1234",
        "environments": ["dev", "prod"], "secretKeys": ["DATABASE_PASSWORD"]}})
    assert rerun.status_code == 201
    assert verify(client, service)["status"] == "conformant"
    assert [result for result, _ in audit_results(client)][-2:] == ["conformant", "conformant"]


def test_a_deleted_secrets_path_is_missing(made: tuple[TestClient, Services], openbao: EmbeddedOpenBao) -> None:
    client, _ = made
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    path = resource(verify(client, service), "vault.secrets-path")["locator"]
    mount, _, rest = path.partition("/")
    vault(openbao).secrets.kv.v2.delete_metadata_and_all_versions(rest, mount_point=mount)
    report = verify(client, service)
    assert resource(report, "vault.secrets-path")["status"] == "missing"
    assert report["status"] == "missing"


def test_kubernetes_drift_is_named_by_object_and_field(made: tuple[TestClient, Services], kube: KubeEmulator) -> None:
    client, _ = made
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    ns = f"{service}-dev"
    assert verify(client, service)["status"] == "conformant"
    [policy, *_] = kube_call(kube, "GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies")["items"]
    kube_call(kube, "DELETE", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/"
                              f"{policy['metadata']['name']}")
    kube_call(kube, "PATCH", f"/api/v1/namespaces/{ns}",
              {"metadata": {"labels": {"goldenpath.dev/cost-center": "cc-9999", "debug": "yes"}}})
    report = verify(client, service)
    namespace = resource(report, "kubernetes.namespace")
    assert namespace["status"] == "drifted"
    findings = {(f["kind"], f["wouldBe"]): f.get("fields") for f in namespace["findings"]}
    assert findings == {("kubernetes.NetworkPolicy", "created"): None,
                        ("kubernetes.Namespace", "updated"): ["metadata.labels.goldenpath.dev/cost-center"]}
    [changed] = [f for f in namespace["findings"] if f["kind"] == "kubernetes.Namespace"]
    assert changed["differences"] == [{"field": "metadata.labels.goldenpath.dev/cost-center", "expected": "cc-1234",
                                       "actual": "cc-9999"}]  # which field, what was made, what is there
    live = kube_call(kube, "GET", f"/api/v1/namespaces/{ns}")["metadata"]["labels"]
    assert live["debug"] == "yes" and live["goldenpath.dev/cost-center"] == "cc-9999"  # nothing repaired


def test_a_namespace_another_team_took_is_foreign(made: tuple[TestClient, Services], kube: KubeEmulator) -> None:
    client, _ = made
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    kube_call(kube, "PATCH", f"/api/v1/namespaces/{service}-dev",
              {"metadata": {"annotations": {"goldenpath.dev/owner-ref": "group:default/team-ledger"}}})
    report = verify(client, service)
    namespace = resource(report, "kubernetes.namespace")
    assert namespace["status"] == "foreign" and "team-ledger" in namespace["detail"]
    assert report["status"] == "foreign"


def test_a_vault_that_cannot_be_reached_is_unknown_never_drift(
        make_app: Callable[..., tuple[Any, Services]], made: tuple[TestClient, Services], kube: KubeEmulator) -> None:
    client, _ = made
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    verify(client, service)
    away, _ = make_app(vault={"addr": "http://127.0.0.1:9", "timeout_seconds": 2},
                       kubernetes={"clusters": {"dev-eu": {"mode": "direct", "server": kube.url}},
                                   "environments": {"dev": ["dev-eu"], "prod": ["dev-eu"]}})
    away_client = away.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    report = verify(away_client, service)
    path = resource(report, "vault.secrets-path")
    assert path["status"] == "unknown" and path["findings"] == []
    assert report["status"] == "unknown"
    assert resource(report, "kubernetes.namespace")["status"] == "conformant"
    assert audit_results(away_client) == []


def test_a_desired_state_the_database_administrator_edited_is_not_trusted(made: tuple[TestClient, Services]) -> None:
    client, services = made
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    run_id = resource(verify(client, service), "kubernetes.namespace")["desiredBy"]["runId"]
    with services.database.transaction() as session:
        row = session.get(Run, run_id)
        assert row is not None
        session.execute(update(Run).where(Run.id == run_id).values(input={**row.input, "tier": "large"}))
    namespace = resource(verify(client, service), "kubernetes.namespace")
    assert namespace["status"] == "unknown" and "no valid seal" in namespace["detail"]


def test_only_the_owners_may_verify_or_read_a_report(made: tuple[TestClient, Services]) -> None:
    client, _ = made
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    app_client = client
    member = {"Authorization": f"Bearer {MEMBER_TOKEN}"}
    stranger = {"Authorization": f"Bearer {STRANGER_TOKEN}"}
    assert app_client.post(RUNS.format(VERIFY), json={"input": {"service": service}}, headers=member).status_code == 201
    refused = app_client.post(RUNS.format(VERIFY), json={"input": {"service": service}}, headers=stranger)
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "service"
    assert app_client.get(f"/api/v1/services/{service}/conformance", headers=stranger).status_code == 403
    assert app_client.get(f"/api/v1/services/{service}/conformance", headers=member).status_code == 200
    assert app_client.get("/api/v1/services/nothing-here/conformance").status_code == 404


def test_a_pass_checks_every_service_and_one_replica_at_a_time(made: tuple[TestClient, Services]) -> None:
    client, services = made
    names = [f"conf-{secrets.token_hex(3)}" for _ in range(2)]
    for name in names:
        provision(client, name)
    summary = services.reconciler.run_pass(names)
    assert summary.ran and summary.services == 2 and summary.statuses == {"conformant": 2}
    metrics = client.get("/api/v1/metrics").text
    assert 'goldenpath_conformance_resources{kind="service",status="conformant"}' in metrics
