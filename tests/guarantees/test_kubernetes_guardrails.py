"""Guarantees of the namespace action, pinned on what lands: the exact guardrail objects (whole NetworkPolicy
specs, Pod Security labels, RBAC subjects and roleRefs, quotas per tier) on a cluster (the kmock emulator, direct
mode) and in the GitOps repository, with the platform's default settings; every one of them valid under the strict
Kubernetes schema; a second run that writes nothing; hand edits reverted; a namespace that another team owns, or
that Golden Path did not create, refused before any write; a manifest that breaks the schema writing nothing on any
cluster. The expected objects are spelled out here, not rendered by the code under test."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests
import yaml
from starlette.testclient import TestClient

from backend.app import build_services, create_app
from backend.errors import PolicyViolation
from backend.guardrails import render
from backend.providers.manifests import validate
from backend.settings import settings_from_dict
from tests.conftest import API_TOKEN, unique
from tests.k8s_emulator import KubeEmulator
from tests.providers.test_gitops import git
from tests.providers.test_kubernetes_direct import _spec

RUNS = "/api/v1/actions/goldenpath:kubernetes:namespace:create/runs"
OWNER = "group:default/team-payments"
VERSION = "1.33"  # the default kubernetes.version
RBAC = "rbac.authorization.k8s.io"
ALL: dict[str, Any] = {"podSelector": {}}  # every pod of the namespace
TIERS = {  # the documented defaults: quota, defaultRequest, default (limit)
    "small": ({"requests.cpu": "2", "requests.memory": "4Gi", "limits.cpu": "4", "limits.memory": "8Gi",
               "pods": "20", "services": "10", "persistentvolumeclaims": "5"},
              {"cpu": "100m", "memory": "128Mi"}, {"cpu": "500m", "memory": "512Mi"}),
    "medium": ({"requests.cpu": "8", "requests.memory": "16Gi", "limits.cpu": "16", "limits.memory": "32Gi",
                "pods": "60", "services": "20", "persistentvolumeclaims": "20"},
               {"cpu": "250m", "memory": "256Mi"}, {"cpu": "1", "memory": "1Gi"}),
    "large": ({"requests.cpu": "32", "requests.memory": "64Gi", "limits.cpu": "64", "limits.memory": "128Gi",
               "pods": "200", "services": "50", "persistentvolumeclaims": "50"},
              {"cpu": "500m", "memory": "512Mi"}, {"cpu": "2", "memory": "2Gi"}),
}
LISTS = {  # where each namespaced kind is listed
    "ResourceQuota": "/api/v1/namespaces/{ns}/resourcequotas",
    "LimitRange": "/api/v1/namespaces/{ns}/limitranges",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}


def expected(service: str, environment: str = "dev", tier: str = "small",
             ingress_namespaces: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Every object of the tenant namespace, as the README promises it with the default settings."""
    ns = f"{service}-{environment}"
    labels = {"app.kubernetes.io/managed-by": "goldenpath", "goldenpath.dev/owner": "team-payments",
              "goldenpath.dev/system": "payments", "goldenpath.dev/service": service,
              "goldenpath.dev/environment": environment, "goldenpath.dev/cost-center": "cc-1234"}

    def meta(name: str) -> dict[str, Any]:
        return {"name": name, "namespace": ns, "labels": labels}

    def network_policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name), "spec": spec}

    def binding(name: str, group: str, role: str) -> dict[str, Any]:
        return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": meta(name),
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": group}]}

    quota, default_request, default_limit = TIERS[tier]
    pod_security = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    objects = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": ns, "labels": {**labels, **pod_security},
                      "annotations": {"goldenpath.dev/owner-ref": OWNER}}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("goldenpath-quota"), "spec": {"hard": quota}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("goldenpath-limits"), "spec": {"limits": [
            {"type": "Container", "default": default_limit, "defaultRequest": default_request}]}},
        network_policy("default-deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        network_policy("allow-same-namespace", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                                "ingress": [{"from": [ALL]}], "egress": [{"to": [ALL]}]}),
        network_policy("allow-dns-egress", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}),
        *([network_policy("allow-ingress-controllers", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}
                      for name in ingress_namespaces]}]})] if ingress_namespaces else []),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(service)},
        binding("goldenpath-owners", "team-payments", "edit"),
        binding("goldenpath-auditors", "platform-auditors", "view"),
    ]
    return {key(o): o for o in objects}


def key(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def plain(manifest: dict[str, Any]) -> dict[str, Any]:
    """The object without what a server or Golden Path's provenance adds (uid, versions, status, who asked)."""
    meta = {k: v for k, v in manifest["metadata"].items() if k in {"name", "namespace", "labels", "annotations"}}
    if "annotations" in meta:
        meta["annotations"] = {k: v for k, v in meta["annotations"].items()
                               if k not in {"goldenpath.dev/source-template", "goldenpath.dev/requested-by"}}
    return {**{k: v for k, v in manifest.items() if k != "status"}, "metadata": meta}


def call(kube: KubeEmulator, method: str, path: str, body: Any = None) -> Any:
    """The emulator's API as a person or another tool would use it (merge patches, as kubectl patch --type merge)."""
    response = requests.request(method, kube.url + path, json=body, timeout=10, headers={
        "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"})
    response.raise_for_status()
    return response.json()


def on_cluster(kube: KubeEmulator, ns: str) -> dict[str, dict[str, Any]]:
    objects = [call(kube, "GET", f"/api/v1/namespaces/{ns}")]
    for kind, path in LISTS.items():
        objects += [{"apiVersion": o.get("apiVersion"), "kind": o.get("kind", kind), **o}
                    for o in call(kube, "GET", path.format(ns=ns))["items"]]
    return {key(o): plain(o) for o in objects}


def in_repository(remote: Path, ns: str, into: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    git("clone", "-q", str(remote), str(into), cwd=into.parent)
    folder = into / "clusters" / "local" / "namespaces" / ns
    objects = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml")) if p.name != "kustomization.yaml"]
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    return {key(o): plain(o) for o in objects}, kustomization["resources"]


def commits(remote: Path) -> int:
    return int(git("rev-list", "--count", "main", cwd=remote).strip()) if (remote / "refs/heads/main").exists() else 0


def namespace_input(service: str, **overrides: Any) -> dict[str, Any]:
    return {"service": service, "system": "payments", "owner": OWNER, "costCenter": "cc-1234",
            "environments": ["dev"], "tier": "small", **overrides}


@pytest.fixture
def remote(gitops_dir: Path) -> Path:
    return gitops_dir / "local.git"


@pytest.fixture
def make_client(kube: KubeEmulator, gitops_dir: Path) -> Callable[..., TestClient]:
    """dev goes to a direct cluster (the emulator) and to GitOps; everything else is the platform's default. No
    Vault: the namespace action needs none (and the mutation check runs these tests often)."""
    def make(**kubernetes: Any) -> TestClient:
        root = gitops_dir.parent
        settings = settings_from_dict({
            "database": {"url": f"sqlite:///{root}/goldenpath.db"}, "auth": {"token": API_TOKEN},
            "audit": {"key_file": str(root / "audit.key"), "witness_file": str(root / "audit-witness.jsonl")},
            "kubernetes": {
                "clusters": {"dev-eu": {"mode": "direct", "server": kube.url},
                             "local": {"mode": "gitops", "remote": str(gitops_dir / "local.git"),
                                       "workdir": str(gitops_dir / "work")}},
                "environments": {"dev": ["dev-eu", "local"], "prod": ["local"]}, **kubernetes}})
        app = create_app(settings, services=build_services(settings, upgrade_schema=True), validate_responses=True)
        client: TestClient = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
        return client

    return make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def test_the_default_guardrails_land_exactly_on_the_cluster_and_in_the_repository(
    client: TestClient, kube: KubeEmulator, remote: Path, tmp_path: Path
) -> None:
    service = unique()
    ns = f"{service}-dev"
    response = client.post(RUNS, json={"input": namespace_input(service)})
    assert response.status_code == 201, response.text
    want = expected(service)
    assert on_cluster(kube, ns) == want
    annotations = call(kube, "GET", f"/api/v1/namespaces/{ns}")["metadata"]["annotations"]
    assert set(annotations) == {"goldenpath.dev/owner-ref", "goldenpath.dev/source-template",
                                "goldenpath.dev/requested-by"}  # provenance: who asked, from which template
    in_git, resources = in_repository(remote, ns, tmp_path / "clone")
    assert in_git == want
    assert resources == [f"{o['kind'].lower()}-{o['metadata']['name']}.yaml" for o in want.values()]
    for manifest in want.values():  # what landed passes the strict schema (no unknown field, right types)
        kubernetes_validate.validate(manifest, VERSION, strict=True)


@pytest.mark.parametrize("tier", ["medium", "large"])  # small: the test above
def test_each_tier_sets_its_quota_and_default_limits(client: TestClient, kube: KubeEmulator, tier: str) -> None:
    service = unique()
    assert client.post(RUNS, json={"input": namespace_input(service, tier=tier)}).status_code == 201
    landed = on_cluster(kube, f"{service}-dev")
    want = expected(service, tier=tier)
    assert landed["ResourceQuota/goldenpath-quota"] == want["ResourceQuota/goldenpath-quota"]
    assert landed["LimitRange/goldenpath-limits"] == want["LimitRange/goldenpath-limits"]


def test_ingress_is_allowed_only_from_the_configured_namespaces(
    make_client: Callable[..., TestClient], kube: KubeEmulator
) -> None:
    client = make_client(ingress_namespaces=["ingress-nginx", "monitoring"])
    service = unique()
    assert client.post(RUNS, json={"input": namespace_input(service)}).status_code == 201
    assert on_cluster(kube, f"{service}-dev") == expected(service, ingress_namespaces=("ingress-nginx", "monitoring"))


def test_pod_security_is_restricted_unless_the_platform_sets_an_environment_otherwise(
    make_client: Callable[..., TestClient], kube: KubeEmulator, remote: Path, tmp_path: Path
) -> None:
    client = make_client(pod_security={"dev": "baseline"})
    service = unique()
    response = client.post(RUNS, json={"input": namespace_input(service, environments=["dev", "prod"])})
    assert response.status_code == 201, response.text
    modes = ("enforce", "audit", "warn")
    dev = on_cluster(kube, f"{service}-dev")[f"Namespace/{service}-dev"]["metadata"]["labels"]
    assert {m: dev[f"pod-security.kubernetes.io/{m}"] for m in modes} == dict.fromkeys(modes, "baseline")
    prod, _ = in_repository(remote, f"{service}-prod", tmp_path / "clone")
    assert prod == expected(service, "prod")  # restricted: the environment has no level of its own


def test_a_second_run_writes_nothing_on_the_cluster_or_in_the_repository(
    client: TestClient, kube: KubeEmulator, remote: Path
) -> None:
    data = namespace_input(unique())
    assert client.post(RUNS, json={"input": data}).status_code == 201
    made, before = commits(remote), len(kube.requests())
    again = client.post(RUNS, json={"input": data})
    assert again.status_code == 201, again.text
    assert kube.writes(before) == [] and commits(remote) == made == 1
    output = again.json()["output"]
    assert output["changed"] is False and [n["commit"] for n in output["namespaces"]] == [None, None]
    assert {o["outcome"] for n in output["namespaces"] for o in n["objects"]} == {"unchanged"}


def test_fields_the_api_server_adds_are_not_changes(client: TestClient, kube: KubeEmulator) -> None:
    """A real API server gives every Namespace `spec.finalizers: [kubernetes]` (and may default other fields
    Golden Path does not render): a re-run must not count those as drift and write each time."""
    data = namespace_input(unique())
    assert client.post(RUNS, json={"input": data}).status_code == 201
    ns = f"{data['service']}-dev"
    call(kube, "PATCH", f"/api/v1/namespaces/{ns}", {"spec": {"finalizers": ["kubernetes"]}, "status": {
        "phase": "Active"}})
    call(kube, "PATCH", f"/api/v1/namespaces/{ns}/serviceaccounts/{data['service']}", {"secrets": []})
    before = len(kube.requests())
    assert client.post(RUNS, json={"input": data}).json()["output"]["changed"] is False
    assert kube.writes(before) == []


def test_hand_edits_to_the_guardrails_are_reverted_on_the_next_run(client: TestClient, kube: KubeEmulator) -> None:
    data = namespace_input(unique())
    assert client.post(RUNS, json={"input": data}).status_code == 201
    ns = f"{data['service']}-dev"
    policies, bindings = (f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
                          f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings")
    everyone = [{"apiGroup": RBAC, "kind": "Group", "name": "system:authenticated"}]
    edits = {  # each a way to open the namespace up by hand
        f"/api/v1/namespaces/{ns}": {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}},
        f"/api/v1/namespaces/{ns}/resourcequotas/goldenpath-quota": {"spec": {"hard": {"pods": "999"}}},
        f"{policies}/default-deny-all": {"spec": {"ingress": [{}], "egress": [{}]}},
        f"{policies}/allow-dns-egress": {"spec": {"egress": [{"to": [{"namespaceSelector": {}}]}]}},
        f"{bindings}/goldenpath-owners": {"subjects": everyone},
        f"{bindings}/goldenpath-auditors": {"roleRef": {"name": "admin"}},
    }
    for path, body in edits.items():
        call(kube, "PATCH", path, body)
    assert on_cluster(kube, ns) != expected(data["service"])
    before = len(kube.requests())
    assert client.post(RUNS, json={"input": data}).status_code == 201
    assert on_cluster(kube, ns) == expected(data["service"])
    written = kube.writes(before)
    assert sorted(written) == sorted([("PATCH", path) for path in edits if not path.endswith("auditors")] + [
        ("DELETE", f"{bindings}/goldenpath-auditors"), ("POST", bindings)])  # roleRef is immutable: replaced


@pytest.mark.parametrize("order", [["dev-eu", "local"], ["local", "dev-eu"]], ids=["direct-first", "gitops-first"])
def test_a_namespace_golden_path_did_not_create_is_refused_before_any_write(
    make_client: Callable[..., TestClient], kube: KubeEmulator, remote: Path, order: list[str]
) -> None:
    client = make_client(environments={"dev": order})
    data = namespace_input(unique())
    ns = f"{data['service']}-dev"
    call(kube, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": ns, "labels": {"goldenpath.dev/owner": "team-payments"},
        "annotations": {"goldenpath.dev/owner-ref": OWNER}}})  # looks like ours, but not managed by Golden Path
    before = len(kube.requests())
    response = client.post(RUNS, json={"input": data})
    assert response.status_code == 409, response.text
    assert f"namespace {ns} on cluster dev-eu exists and is not managed by Golden Path" in response.json()["detail"]
    assert kube.writes(before) == [] and commits(remote) == 0


@pytest.mark.parametrize("order", [["dev-eu", "local"], ["local", "dev-eu"]], ids=["direct-first", "gitops-first"])
def test_a_namespace_another_team_owns_is_refused_before_any_write(
    make_client: Callable[..., TestClient], kube: KubeEmulator, remote: Path, order: list[str]
) -> None:
    client = make_client(environments={"dev": order})
    data = namespace_input(unique())
    ns = f"{data['service']}-dev"
    theirs = {"app.kubernetes.io/managed-by": "goldenpath", "goldenpath.dev/owner": "team-ledger"}
    call(kube, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": ns, "labels": theirs, "annotations": {"goldenpath.dev/owner-ref": "group:default/team-ledger"}}})
    before = len(kube.requests())
    response = client.post(RUNS, json={"input": data})
    assert response.status_code == 409, response.text
    assert f"namespace {ns} on cluster dev-eu is owned by group:default/team-ledger" in response.json()["detail"]
    assert kube.writes(before) == [] and commits(remote) == 0


@pytest.mark.parametrize("annotations", [
    {"goldenpath.dev/owner-ref": "group:default/team-ledger"},
    {"goldenpath.dev/owner-ref": "user:default/team-payments"},  # a person, not the team of that name
    None,  # a namespace file someone committed by hand, not managed by Golden Path
], ids=["other-team", "a-person", "not-managed"])
def test_a_namespace_in_the_repository_that_is_not_the_teams_is_refused_before_any_write(
    client: TestClient, kube: KubeEmulator, remote: Path, tmp_path: Path, annotations: dict[str, str] | None
) -> None:
    """The direct cluster comes first and is free: it must not be written either."""
    data = namespace_input(unique())
    ns = f"{data['service']}-dev"
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("clone", "-q", str(remote), str(seed), cwd=tmp_path)
    folder = seed / "clusters" / "local" / "namespaces" / ns
    folder.mkdir(parents=True)
    metadata: dict[str, Any] = {"name": ns}
    if annotations is not None:
        metadata.update(labels={"app.kubernetes.io/managed-by": "goldenpath"}, annotations=annotations)
    (folder / f"namespace-{ns}.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                                 "metadata": metadata}))
    git("add", "-A", cwd=seed)
    git("commit", "-qm", "theirs", cwd=seed)
    git("push", "-q", "origin", "HEAD:main", cwd=seed)
    before = len(kube.requests())
    response = client.post(RUNS, json={"input": data})
    assert response.status_code == 409, response.text
    assert "on cluster local" in response.json()["detail"]
    assert kube.writes(before) == [] and commits(remote) == 1


def test_a_manifest_failing_the_schema_writes_nothing_on_any_cluster(
    make_client: Callable[..., TestClient], kube: KubeEmulator, remote: Path
) -> None:
    """dev's manifests are valid and come first; prod's Pod Security level is not a string: nothing at all."""
    client = make_client(pod_security={"prod": 3})
    before = len(kube.requests())
    response = client.post(RUNS, json={"input": namespace_input(unique(), environments=["dev", "prod"])})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["rule"] == "kubernetes-schema" and "Namespace/" in problem["detail"]
    assert kube.writes(before) == [] and commits(remote) == 0


def test_the_schema_check_is_strict_and_fails_closed() -> None:
    manifests = render(_spec("pay-dev"))
    validate(manifests, VERSION)
    typo = copy.deepcopy(manifests)
    deny = next(m for m in typo if m["metadata"]["name"] == "default-deny-all")
    deny["spec"]["policyType"] = deny["spec"].pop("policyTypes")  # an unknown field: the policy would not apply
    with pytest.raises(PolicyViolation, match="NetworkPolicy/pay-dev/default-deny-all") as error:
        validate(typo, VERSION)
    assert error.value.to_problem()["rule"] == "kubernetes-schema"
    with pytest.raises(PolicyViolation, match="cannot validate"):  # no schema for that version: refuse, not pass
        validate(manifests, "9.99")
