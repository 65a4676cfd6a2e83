"""KubernetesCluster against the kmock emulator over HTTP; the emulator's request log proves the writes."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest

from backend.errors import ConflictError, UpstreamUnavailable
from backend.guardrails import TenantSpec, render
from backend.kube_settings import ClusterSettings
from backend.providers.changes import Change, Outcome
from backend.providers.clusters import ClusterTarget, TenantResult
from backend.providers.kubernetes_api import KubernetesCluster, api_client_for
from tests.conftest import unique
from tests.k8s_emulator import KubeEmulator

OWNER = "group:default/team-a"
heard: list[Change] = []  # on_change is exercised by every call; the action tests check what it records


def _spec(namespace: str, **overrides: Any) -> TenantSpec:
    values: dict[str, Any] = {
        "service": "pay", "system": "payments", "owner_ref": OWNER, "owner_group": "team-a", "environment": "dev",
        "cost_center": "cc-1", "namespace": namespace, "service_account": "pay", "pod_security": "restricted",
        "quota": {"pods": "20", "requests.cpu": "2"}, "default_request": {"cpu": "100m"},
        "default_limit": {"cpu": "500m"}, "auditors_group": "auditors",
        "provenance": {"goldenpath.dev/requested-by": "user:default/jane"},
    }
    values.update(overrides)
    return TenantSpec(**values)


def converge(cluster: ClusterTarget, manifests: list[dict[str, Any]], *, owner: str = OWNER, dry_run: bool = False,
             message: str = "m") -> TenantResult:
    return cluster.ensure_tenant(manifests, owner_ref=owner, message=message, dry_run=dry_run, on_change=heard.append)


@pytest.fixture
def cluster(kube: KubeEmulator) -> KubernetesCluster:
    return KubernetesCluster("dev-eu", api_client_for(ClusterSettings(name="dev-eu", mode="direct", server=kube.url)))


@pytest.fixture
def core(kube: KubeEmulator) -> kubernetes.client.CoreV1Api:
    configuration = kubernetes.client.Configuration()
    configuration.host = kube.url
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))


def test_first_run_writes_one_per_object_and_a_rerun_writes_nothing(
    cluster: KubernetesCluster, kube: KubeEmulator
) -> None:
    manifests = render(_spec(unique("ns")))
    before = len(kube.requests())
    first = converge(cluster, manifests)
    assert {c.outcome for c in first.changes} == {Outcome.CREATED}
    assert len(kube.writes(before)) == len(manifests) == first.writes
    assert all(method == "POST" for method, _ in kube.writes(before))
    middle = len(kube.requests())
    second = converge(cluster, manifests)
    assert {c.outcome for c in second.changes} == {Outcome.UNCHANGED}
    assert kube.writes(middle) == [] and second.writes == 0


def test_dry_run_writes_nothing_and_diffs(cluster: KubernetesCluster, kube: KubeEmulator) -> None:
    manifests = render(_spec(unique("ns")))
    before = len(kube.requests())
    result = converge(cluster, manifests, dry_run=True)
    assert kube.writes(before) == []
    assert {c.outcome for c in result.changes} == {Outcome.CREATED}
    assert "+kind: ResourceQuota" in result.diff


def test_drift_is_restored_and_only_owned_fields_are_patched(
    cluster: KubernetesCluster, kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    namespace = unique("ns")
    manifests = render(_spec(namespace))
    converge(cluster, manifests)
    core.patch_namespace(namespace, body={"metadata": {"labels": {"goldenpath.dev/cost-center": "stolen",
                                                                  "team.example.com/extra": "kept"}}})
    core.patch_namespaced_resource_quota("goldenpath-quota", namespace, body={"spec": {"hard": {"pods": "999",
                                                                                               "secrets": "5"}}})
    before = len(kube.requests())
    result = converge(cluster, manifests)
    updated = {c.locator.split(":", 1)[1]: c.fields for c in result.changes if c.outcome is Outcome.UPDATED}
    assert updated == {f"Namespace/{namespace}": ("metadata.labels.goldenpath.dev/cost-center",),
                       f"ResourceQuota/{namespace}/goldenpath-quota": ("spec",)}
    assert [m for m, _ in kube.writes(before)] == ["PATCH", "PATCH"]
    ns = core.read_namespace(namespace)
    assert ns.metadata.labels["goldenpath.dev/cost-center"] == "cc-1"
    assert ns.metadata.labels["team.example.com/extra"] == "kept"
    assert core.read_namespaced_resource_quota("goldenpath-quota", namespace).spec.hard == {
        "pods": "20", "requests.cpu": "2"}


def test_provenance_is_kept_from_creation(cluster: KubernetesCluster, core: kubernetes.client.CoreV1Api) -> None:
    namespace = unique("ns")
    converge(cluster, render(_spec(namespace)))
    rerun = render(_spec(namespace, provenance={"goldenpath.dev/requested-by": "user:default/someone-else"}))
    result = converge(cluster, rerun)
    assert {c.outcome for c in result.changes} == {Outcome.UNCHANGED}
    assert core.read_namespace(namespace).metadata.annotations["goldenpath.dev/requested-by"] == "user:default/jane"


def test_foreign_namespaces_are_conflicts(cluster: KubernetesCluster, core: kubernetes.client.CoreV1Api,
                                          kube: KubeEmulator) -> None:
    unmanaged = unique("ns")
    core.create_namespace(body={"metadata": {"name": unmanaged}})
    with pytest.raises(ConflictError, match="not managed by Golden Path"):
        converge(cluster, render(_spec(unmanaged)))
    theirs = unique("ns")
    converge(cluster, render(_spec(theirs)))
    before = len(kube.requests())
    with pytest.raises(ConflictError) as error:
        converge(cluster, render(_spec(theirs, owner_ref="group:default/team-b")), owner="group:default/team-b")
    assert error.value.owner == OWNER
    assert kube.writes(before) == []


@pytest.mark.parametrize("recorded", [OWNER, "team-a"])  # "team-a": as an earlier run may have recorded it
def test_namespace_owners_are_full_entity_refs(cluster: KubernetesCluster, kube: KubeEmulator, recorded: str) -> None:
    namespace = unique("ns")
    converge(cluster, render(_spec(namespace, owner_ref=recorded)), owner=recorded)
    before = len(kube.requests())
    for intruder in ("user:default/team-a", "group:other/team-a"):
        with pytest.raises(ConflictError):
            cluster.check_namespace(namespace, owner_ref=intruder)
        with pytest.raises(ConflictError) as error:
            converge(cluster, render(_spec(namespace, owner_ref=intruder)), owner=intruder)
        assert error.value.owner == recorded
    assert kube.writes(before) == []
    assert cluster.check_namespace(namespace, owner_ref=OWNER)
    assert cluster.check_namespace(namespace, owner_ref="team-a")


def test_unreachable_cluster_is_retryable() -> None:
    dead = KubernetesCluster("gone", api_client_for(ClusterSettings(name="gone", mode="direct",
                                                                    server="http://127.0.0.1:9")))
    with pytest.raises(UpstreamUnavailable) as error:
        converge(dead, render(_spec("x-dev")))
    assert error.value.to_problem()["retryable"] is True
