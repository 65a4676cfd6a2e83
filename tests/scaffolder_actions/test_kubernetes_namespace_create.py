"""The namespace action through the REST API: GitOps (the default) and direct mode against the emulator,
several environments and clusters, fail-closed validation, and agreement with the Vault action on names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from tests.conftest import API_TOKEN, VAULT_ACTION, unique
from tests.k8s_emulator import KubeEmulator
from tests.providers.test_gitops import git

ACTION = "goldenpath:kubernetes:namespace:create"
RUNS = f"/api/v1/actions/{ACTION}/runs"


def namespace_input(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"service": unique(), "system": "payments", "owner": "group:default/team-payments",
                            "costCenter": "cc-1234", "environments": ["dev", "prod"], "tier": "small"}
    data.update(overrides)
    return data


@pytest.fixture
def hybrid(make_app: Callable[..., Any], kube: KubeEmulator, gitops_dir: Path) -> TestClient:
    """dev goes to GitOps, prod to a direct cluster (the emulator) and to GitOps as well."""
    app, _ = make_app(kubernetes={
        "clusters": {
            "local": {"mode": "gitops", "remote": str(gitops_dir / "local.git"), "workdir": str(gitops_dir / "w")},
            "prod-eu": {"mode": "direct", "server": kube.url},
        },
        "environments": {"dev": ["local"], "prod": ["prod-eu", "local"]},
        "pod_security": {"dev": "baseline"},
    })
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def test_each_environment_and_cluster_gets_its_namespace(hybrid: TestClient, kube: KubeEmulator) -> None:
    data = namespace_input()
    before = len(kube.requests())
    response = hybrid.post(RUNS, json={"input": data})
    assert response.status_code == 201, response.text
    output = response.json()["output"]
    places = [(n["environment"], n["cluster"], n["mode"]) for n in output["namespaces"]]
    assert places == [("dev", "local", "gitops"), ("prod", "prod-eu", "direct"), ("prod", "local", "gitops")]
    assert all(n["changed"] and n["serviceAccount"] == data["service"] for n in output["namespaces"])
    assert output["namespaces"][1]["commit"] is None and output["namespaces"][0]["commit"]
    assert len(kube.writes(before)) == len(output["namespaces"][1]["objects"])
    dev_ns = [o for o in output["namespaces"][0]["objects"] if o["kind"] == "Namespace"]
    assert dev_ns == [{"kind": "Namespace", "name": f"{data['service']}-dev", "outcome": "created"}]

    middle = len(kube.requests())
    again = hybrid.post(RUNS, json={"input": data}).json()["output"]
    assert again["changed"] is False and all(n["commit"] is None for n in again["namespaces"])
    assert kube.writes(middle) == []


def test_pod_security_follows_the_environment(hybrid: TestClient, gitops_dir: Path) -> None:
    data = namespace_input(environments=["dev"])
    assert hybrid.post(RUNS, json={"input": data}).status_code == 201
    clone = gitops_dir / "check"
    git("clone", "-q", str(gitops_dir / "local.git"), str(clone), cwd=gitops_dir)
    name = f"{data['service']}-dev"
    ns = yaml.safe_load((clone / f"clusters/local/namespaces/{name}/namespace-{name}.yaml").read_text())
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert ns["metadata"]["labels"]["goldenpath.dev/cost-center"] == "cc-1234"
    assert ns["metadata"]["annotations"]["goldenpath.dev/owner-ref"] == "group:default/team-payments"


def test_dry_run_returns_manifests_diff_and_writes_nothing(hybrid: TestClient, kube: KubeEmulator,
                                                          gitops_dir: Path) -> None:
    before = len(kube.requests())
    response = hybrid.post(RUNS, json={"input": namespace_input(), "dryRun": True})
    assert response.status_code == 201, response.text
    namespaces = response.json()["output"]["namespaces"]
    assert all("+kind: NetworkPolicy" in n["diff"] for n in namespaces)
    documents = list(yaml.safe_load_all(namespaces[0]["manifests"]))
    assert [d["kind"] for d in documents][:3] == ["Namespace", "ResourceQuota", "LimitRange"]
    assert kube.writes(before) == []
    assert not (gitops_dir / "local.git" / "refs" / "heads" / "main").exists()


def test_a_manifest_breaking_the_schema_fails_closed_everywhere(make_app: Callable[..., Any], kube: KubeEmulator,
                                                                gitops_dir: Path) -> None:
    app, _ = make_app(kubernetes={
        "clusters": {"local": {"mode": "gitops", "remote": str(gitops_dir / "l.git"), "workdir": str(gitops_dir / "w")},
                     "prod-eu": {"mode": "direct", "server": kube.url}},
        "environments": {"dev": ["prod-eu"], "prod": ["local"]},
        "tiers": {"odd": {"quota": {"pods": "5"}, "default_request": {"cpu": "100m"},
                          "default_limit": {"cpu": {"not": "a quantity"}}}},
    })
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    before = len(kube.requests())
    response = client.post(RUNS, json={"input": namespace_input(tier="odd")})
    assert response.status_code == 422, response.text
    assert response.json()["rule"] == "kubernetes-schema"
    assert "LimitRange" in response.json()["detail"]
    assert kube.writes(before) == [] and not (gitops_dir / "l.git").exists()


@pytest.mark.parametrize(("overrides", "status", "field"), [
    ({"environments": ["qa"]}, 422, "environments.0"),
    ({"tier": "huge"}, 422, "tier"),
    ({"service": "a" * 60}, 422, "service"),  # the namespace it would make is too long
    ({"owner": "not an owner"}, 400, "owner"),
])
def test_bad_requests_name_the_field(hybrid: TestClient, overrides: dict[str, Any], status: int, field: str) -> None:
    response = hybrid.post(RUNS, json={"input": namespace_input(**overrides)})
    assert response.status_code == status, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


def test_the_vault_and_namespace_actions_agree_on_names(client: TestClient) -> None:
    data = namespace_input(environments=["dev", "prod"])
    namespaces = client.post(RUNS, json={"input": data}).json()["output"]["namespaces"]
    vault_input = {k: data[k] for k in ("service", "system", "owner", "costCenter", "environments")}
    paths = client.post(f"/api/v1/actions/{VAULT_ACTION}/runs", json={"input": vault_input}).json()["output"]["paths"]
    assert [(n["namespace"], n["serviceAccount"]) for n in namespaces] == [
        (p["namespace"], p["serviceAccount"]) for p in paths]
