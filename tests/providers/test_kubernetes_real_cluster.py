"""The direct-mode behaviour against a real cluster, when GOLDENPATH_TEST_KUBECONFIG names a kubeconfig
(optionally GOLDENPATH_TEST_KUBE_CONTEXT). It creates namespaces `gp-test-*` and deletes them afterwards;
the credentials need create/get/patch/delete on namespaces, quotas, limit ranges, network policies,
service accounts and role bindings (and bind on the edit/view ClusterRoles)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import kubernetes.client
import pytest

from backend.errors import ConflictError
from backend.guardrails import render
from backend.kube_settings import ClusterSettings
from backend.providers.changes import Outcome
from backend.providers.kubernetes_api import KubernetesCluster, api_client_for
from tests.conftest import unique
from tests.providers.test_kubernetes_direct import _spec, converge

KUBECONFIG = os.environ.get("GOLDENPATH_TEST_KUBECONFIG")
pytestmark = pytest.mark.skipif(
    not KUBECONFIG, reason="set GOLDENPATH_TEST_KUBECONFIG (and GOLDENPATH_TEST_KUBE_CONTEXT) to run against a "
    "real cluster; no Kubernetes API server can run on these machines")


@pytest.fixture
def real() -> Iterator[tuple[KubernetesCluster, str]]:
    settings = ClusterSettings(name="real", mode="direct", kubeconfig=KUBECONFIG,
                               context=os.environ.get("GOLDENPATH_TEST_KUBE_CONTEXT"))
    client = api_client_for(settings)
    namespace = unique("gp-test")
    yield KubernetesCluster("real", client), namespace
    kubernetes.client.CoreV1Api(client).delete_namespace(namespace, _preload_content=False)


def test_converges_and_reruns_without_writes(real: tuple[KubernetesCluster, str]) -> None:
    cluster, namespace = real
    manifests = render(_spec(namespace))
    first = converge(cluster, manifests)
    assert first.writes == len(manifests)
    second = converge(cluster, manifests)
    unchanged = [c for c in second.changes if c.outcome is Outcome.UNCHANGED]
    assert second.writes == 0, [c for c in second.changes if c not in unchanged]


def test_another_owner_is_refused(real: tuple[KubernetesCluster, str]) -> None:
    cluster, namespace = real
    converge(cluster, render(_spec(namespace)))
    with pytest.raises(ConflictError):
        converge(cluster, render(_spec(namespace, owner_ref="group:default/team-b")), owner="group:default/team-b")
