"""Kubernetes configuration: clusters (direct or GitOps), environment → cluster mapping, size tiers, guardrails.

Defaults give `make run` one GitOps cluster, `local`, backed by a bare repository under ./var/gitops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "small": {
        "quota": {"requests.cpu": "2", "requests.memory": "4Gi", "limits.cpu": "4", "limits.memory": "8Gi",
                  "pods": "20", "services": "10", "persistentvolumeclaims": "5"},
        "default_request": {"cpu": "100m", "memory": "128Mi"},
        "default_limit": {"cpu": "500m", "memory": "512Mi"},
    },
    "medium": {
        "quota": {"requests.cpu": "8", "requests.memory": "16Gi", "limits.cpu": "16", "limits.memory": "32Gi",
                  "pods": "60", "services": "20", "persistentvolumeclaims": "20"},
        "default_request": {"cpu": "250m", "memory": "256Mi"},
        "default_limit": {"cpu": "1", "memory": "1Gi"},
    },
    "large": {
        "quota": {"requests.cpu": "32", "requests.memory": "64Gi", "limits.cpu": "64", "limits.memory": "128Gi",
                  "pods": "200", "services": "50", "persistentvolumeclaims": "50"},
        "default_request": {"cpu": "500m", "memory": "512Mi"},
        "default_limit": {"cpu": "2", "memory": "2Gi"},
    },
}


@dataclass(frozen=True)
class ClusterSettings:
    name: str
    mode: str = "gitops"  # "direct" or "gitops"
    # direct mode: a kubeconfig (+ context), in-cluster credentials, or a server URL + token file
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    server: str | None = None
    token_file: str | None = None
    # gitops mode: the remote the commits are pushed to, and where the working clone lives
    remote: str | None = None
    workdir: str | None = None
    branch: str = "main"


@dataclass(frozen=True)
class Tier:
    name: str
    quota: dict[str, str]
    default_request: dict[str, str]
    default_limit: dict[str, str]


@dataclass(frozen=True)
class KubernetesSettings:
    version: str = "1.33"
    clusters: dict[str, ClusterSettings] = field(default_factory=lambda: {
        "local": ClusterSettings(name="local", mode="gitops", remote="var/gitops/local.git",
                                 workdir="var/gitops/local-work")})
    environments: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "dev": ("local",), "staging": ("local",), "prod": ("local",)})
    tiers: dict[str, Tier] = field(default_factory=lambda: {n: Tier(name=n, **t) for n, t in DEFAULT_TIERS.items()})
    pod_security: dict[str, str] = field(default_factory=dict)  # environment → level; default below
    pod_security_default: str = "restricted"
    owner_cluster_role: str = "edit"
    auditors_group: str | None = "platform-auditors"
    auditors_cluster_role: str = "view"
    dns_namespace: str = "kube-system"
    dns_pod_labels: dict[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})
    ingress_namespaces: tuple[str, ...] = ()

    def pod_security_for(self, environment: str) -> str:
        return self.pod_security.get(environment, self.pod_security_default)


def kubernetes_from_dict(raw: dict[str, Any]) -> KubernetesSettings:
    if not raw:
        return KubernetesSettings()
    values = dict(raw)
    if "clusters" in values:
        values["clusters"] = {name: ClusterSettings(name=name, **dict(spec))
                              for name, spec in values["clusters"].items()}
    if "environments" in values:
        values["environments"] = {env: tuple(names) for env, names in values["environments"].items()}
    if "tiers" in values:
        values["tiers"] = {name: Tier(name=name, **dict(spec)) for name, spec in values["tiers"].items()}
    if "ingress_namespaces" in values:  # a list in YAML, "a,b" from an environment variable
        found = values["ingress_namespaces"]
        values["ingress_namespaces"] = tuple(
            v.strip() for v in (found.split(",") if isinstance(found, str) else map(str, found)) if v.strip())
    return KubernetesSettings(**values)
