"""Repair by policy: a pass puts back exactly the drifted fields of what `reconcile.repair` lists, as a normal
audited run, keeps what others added, and only reports the rest (prod, foreign, unreadable)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from backend.app import Services
from backend.embedded import EmbeddedOpenBao
from tests.conformance.test_drift import (
    OWNER,
    RUNS,
    kube_call,
    provision,
    resource,
    vault,
)
from tests.conftest import API_TOKEN, VAULT_ACTION
from tests.k8s_emulator import KubeEmulator
from tests.providers.test_gitops import git

NAMESPACES = "goldenpath:kubernetes:namespace:create"
NETWORK_POLICIES = "/apis/networking.k8s.io/v1/namespaces/{}/networkpolicies"


def app_with(make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator,
             repair: list[dict[str, str]]) -> tuple[TestClient, Services]:
    app, services = make_app(
        kubernetes={"clusters": {"dev-eu": {"mode": "direct", "server": kube.url}},
                    "environments": {"dev": ["dev-eu"], "prod": ["dev-eu"]}},
        reconcile={"interval_seconds": 0, "repair": repair})
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"}), services


def drift_namespace(kube: KubeEmulator, ns: str) -> str:
    """Delete a NetworkPolicy, change our cost-center label, add a label of someone else's; the policy's name."""
    [policy, *_] = kube_call(kube, "GET", NETWORK_POLICIES.format(ns))["items"]
    kube_call(kube, "DELETE", f"{NETWORK_POLICIES.format(ns)}/{policy['metadata']['name']}")
    kube_call(kube, "PATCH", f"/api/v1/namespaces/{ns}",
              {"metadata": {"labels": {"goldenpath.dev/cost-center": "cc-9999", "debug": "yes"}}})
    return str(policy["metadata"]["name"])


def test_dev_is_repaired_exactly_and_prod_only_reported(make_app: Callable[..., tuple[Any, Services]],
                                                        kube: KubeEmulator) -> None:
    client, services = app_with(make_app, kube, [{"kind": "kubernetes.namespace", "environment": "dev"}])
    service = f"rep-{secrets.token_hex(3)}"
    provision(client, service)
    dev_policy = drift_namespace(kube, f"{service}-dev")
    drift_namespace(kube, f"{service}-prod")

    summary = services.reconciler.run_pass([service])
    [repair] = summary.repairs
    assert repair.outcome == "repaired" and repair.run_id

    dev = kube_call(kube, "GET", f"/api/v1/namespaces/{service}-dev")["metadata"]["labels"]
    assert dev["goldenpath.dev/cost-center"] == "cc-1234" and dev["debug"] == "yes"  # ours back, theirs kept
    assert dev_policy in {p["metadata"]["name"] for p in
                          kube_call(kube, "GET", NETWORK_POLICIES.format(f"{service}-dev"))["items"]}
    prod = kube_call(kube, "GET", f"/api/v1/namespaces/{service}-prod")["metadata"]["labels"]
    assert prod["goldenpath.dev/cost-center"] == "cc-9999"  # prod is report-only: left as found

    report = services.conformance.stored(service)
    assert report is not None
    assert resource(report, "kubernetes.namespace", "dev")["status"] == "conformant"
    assert resource(report, "kubernetes.namespace", "prod")["status"] == "drifted"

    run = client.get(f"/api/v1/runs/{repair.run_id}").json()  # a normal run: in the runs list, audited
    assert run["caller"] == "goldenpath:reconciler" and run["status"] == "succeeded"
    assert run["input"]["environments"] == ["dev"] and run["context"]["repairOf"] == repair.desired_by
    assert {c["outcome"] for c in run["changes"]} == {"created", "updated", "unchanged"}
    events = client.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    assert [e["result"] for e in events if e["run_id"] == repair.run_id] == ["succeeded"]
    assert services.reconciler.run_pass([service]).repairs == []  # dev converged; prod is never repaired
    assert kube_call(kube, "GET", f"/api/v1/namespaces/{service}-prod")["metadata"]["labels"][
        "goldenpath.dev/cost-center"] == "cc-9999"


def test_a_widened_vault_policy_is_put_back(make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator,
                                            openbao: EmbeddedOpenBao) -> None:
    client, services = app_with(make_app, kube, [{"kind": "*"}])
    service = f"rep-{secrets.token_hex(3)}"
    provision(client, service)
    [policy] = [p for p in vault(openbao).sys.list_policies()["data"]["policies"]
                if service in p and "workload" in p and "dev" in p]
    before = vault(openbao).sys.read_policy(policy)["data"]["rules"]
    vault(openbao).sys.create_or_update_policy(policy, 'path "secret/*" { capabilities = ["read", "list"] }\n')
    summary = services.reconciler.run_pass([service])
    assert [r.outcome for r in summary.repairs] == ["repaired"]
    assert vault(openbao).sys.read_policy(policy)["data"]["rules"].strip() == before.strip()
    assert summary.statuses == {"conformant": 1}


def test_without_rules_nothing_is_repaired(make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator) -> None:
    client, services = app_with(make_app, kube, [])
    service = f"rep-{secrets.token_hex(3)}"
    provision(client, service)
    drift_namespace(kube, f"{service}-dev")
    summary = services.reconciler.run_pass([service])
    assert summary.repairs == [] and summary.statuses == {"drifted": 1}
    assert kube_call(kube, "GET", f"/api/v1/namespaces/{service}-dev")["metadata"]["labels"][
        "goldenpath.dev/cost-center"] == "cc-9999"


def test_a_repair_never_undoes_a_later_runs_work(make_app: Callable[..., tuple[Any, Services]],
                                                 kube: KubeEmulator) -> None:
    """Run 1 made dev and prod (small); run 2 made dev again as medium. prod drifts: run 1 is run again for prod
    only, and dev keeps run 2's medium quota."""
    client, services = app_with(make_app, kube, [{"kind": "kubernetes.namespace"}])
    service = f"rep-{secrets.token_hex(3)}"
    common = {"service": service, "system": "payments", "owner": OWNER, "costCenter": "cc-1234"}
    for environments, tier in ((["dev", "prod"], "small"), (["dev"], "medium")):
        answer = client.post(RUNS.format(NAMESPACES), json={"input": {**common, "environments": environments,
                                                                      "tier": tier}})
        assert answer.status_code == 201, answer.text
    medium = kube_call(kube, "GET", f"/api/v1/namespaces/{service}-dev/resourcequotas")["items"][0]["spec"]
    drift_namespace(kube, f"{service}-prod")
    [repair] = services.reconciler.run_pass([service]).repairs
    assert repair.outcome == "repaired"
    assert kube_call(kube, "GET", f"/api/v1/namespaces/{service}-prod")["metadata"]["labels"][
        "goldenpath.dev/cost-center"] == "cc-1234"
    assert kube_call(kube, "GET", f"/api/v1/namespaces/{service}-dev/resourcequotas")["items"][0]["spec"] == medium


@pytest.mark.parametrize("how", ["foreign", "unreadable"])
def test_foreign_or_unreadable_resources_are_never_repaired(
        make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator, how: str) -> None:
    client, services = app_with(make_app, kube, [{"kind": "*"}])
    service = f"rep-{secrets.token_hex(3)}"
    provision(client, service)
    if how == "foreign":
        kube_call(kube, "PATCH", f"/api/v1/namespaces/{service}-dev",
                  {"metadata": {"annotations": {"goldenpath.dev/owner-ref": "group:default/team-ledger"}}})
    else:
        _, services = make_app(
            vault={"addr": "http://127.0.0.1:9", "timeout_seconds": 2},
            kubernetes={"clusters": {"dev-eu": {"mode": "direct", "server": kube.url}},
                        "environments": {"dev": ["dev-eu"], "prod": ["dev-eu"]}},
            reconcile={"interval_seconds": 0, "repair": [{"kind": "*"}]})
    summary = services.reconciler.run_pass([service])
    assert summary.repairs == []
    assert summary.statuses == {"foreign" if how == "foreign" else "unknown": 1}


def test_the_vault_action_input_is_what_a_repair_runs_again(make_app: Callable[..., tuple[Any, Services]],
                                                           kube: KubeEmulator, openbao: EmbeddedOpenBao) -> None:
    """A deleted secrets path comes back (missing → repaired), its keys with it."""
    client, services = app_with(make_app, kube, [{"kind": "vault.secrets-path", "environment": "prod"}])
    service = f"rep-{secrets.token_hex(3)}"
    provision(client, service)
    [run] = [r for r in client.get("/api/v1/runs", params={"limit": 50}).json()["items"]
             if r["actionId"] == VAULT_ACTION and r["input"]["service"] == service]
    path = f"prod/payments/{service}"
    vault(openbao).secrets.kv.v2.delete_metadata_and_all_versions(path, mount_point="secret")
    [repair] = services.reconciler.run_pass([service]).repairs
    assert repair.outcome == "repaired" and repair.desired_by == run["id"]
    keys = vault(openbao).secrets.kv.v2.read_secret_version(path, mount_point="secret",
                                                            raise_on_deleted_version=True)["data"]["data"]
    assert set(keys) == {"DATABASE_PASSWORD"}


def test_a_pass_reads_each_kind_once_per_cluster_not_each_object(make_app: Callable[..., tuple[Any, Services]],
                                                                  kube: KubeEmulator) -> None:
    client, services = app_with(make_app, kube, [])
    names = [f"rep-{secrets.token_hex(3)}" for _ in range(3)]
    for name in names:
        provision(client, name)
    quota = f"/api/v1/namespaces/{names[0]}-dev/resourcequotas/goldenpath-quota"
    kube_call(kube, "PATCH", quota, {"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}})
    before = len(kube.requests())
    summary = services.reconciler.run_pass(names)
    assert summary.statuses == {"conformant": 2, "drifted": 1}
    requests = kube.requests()[before:]
    lists = [path for method, path in requests if method == "GET" and path.count("/") <= 4]
    reads = [path for method, path in requests if method == "GET" and path.count("/") > 4]
    assert len(lists) == 6  # Namespaces, quotas, limit ranges, service accounts, network policies, role bindings
    assert reads == [quota]  # our label taken off: read on its own (without lists: 2 x 9 objects x 3 services)
    assert kube.writes(before) == []
    report = services.conformance.stored(names[0])
    assert report is not None
    [finding] = resource(report, "kubernetes.namespace", "dev")["findings"]
    assert finding["fields"] == ["metadata.labels.app.kubernetes.io/managed-by"]

    verify = services.conformance.check(names[1])  # outside a pass (the verify action): one read per object
    assert verify["status"] == "conformant"


def test_a_gitops_pass_fetches_once_and_sees_a_change_pushed_behind_its_back(
        make_app: Callable[..., tuple[Any, Services]], gitops_dir: Path, tmp_path: Path) -> None:
    app, services = make_app(kubernetes={"environments": {"dev": ["local"], "prod": ["local"]}},
                             reconcile={"interval_seconds": 0})
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    names = [f"rep-{secrets.token_hex(3)}" for _ in range(2)]
    for name in names:
        provision(client, name)
    work = tmp_path / "someone"
    git("clone", "-q", str(gitops_dir / "local.git"), str(work), cwd=tmp_path)
    path = work / "clusters" / "local" / "namespaces" / f"{names[1]}-prod" / f"namespace-{names[1]}-prod.yaml"
    path.write_text(path.read_text().replace("cc-1234", "cc-9999"))
    git("-c", "user.name=someone", "-c", "user.email=someone@example.com", "commit", "-qam", "debugging", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    summary = services.reconciler.run_pass(names)
    assert summary.statuses == {"conformant": 1, "drifted": 1}
    report = services.conformance.stored(names[1])
    assert report is not None
    [finding] = resource(report, "kubernetes.namespace", "prod")["findings"]
    assert finding["differences"] == [{"field": "metadata.labels.goldenpath.dev/cost-center", "expected": "cc-1234",
                                       "actual": "cc-9999"}]
