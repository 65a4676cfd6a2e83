"""The guardrails of a tenant namespace, rendered as plain Kubernetes manifests (no SDK objects).

One namespace per service and environment: labels for ownership and chargeback, Pod Security
Admission, a quota and default limits from the size tier, default-deny networking with same-namespace
and DNS allowances, the workload ServiceAccount, and RoleBindings for the owners and the auditors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MANAGED_BY = "goldenpath"
LABEL_PREFIX = "goldenpath.dev/"
OWNER_REF_ANNOTATION = LABEL_PREFIX + "owner-ref"
# Provenance is written when an object is created and never converged afterwards: a re-run by another
# user or template must not count as a change.
PROVENANCE_ANNOTATIONS = (LABEL_PREFIX + "source-template", LABEL_PREFIX + "requested-by")


@dataclass(frozen=True)
class TenantSpec:
    service: str
    system: str
    owner_ref: str
    owner_group: str
    environment: str
    cost_center: str
    namespace: str
    service_account: str
    pod_security: str
    quota: dict[str, str]
    default_request: dict[str, str]
    default_limit: dict[str, str]
    owner_cluster_role: str = "edit"
    auditors_group: str | None = None
    auditors_cluster_role: str = "view"
    dns_namespace: str = "kube-system"
    dns_pod_labels: dict[str, str] = field(default_factory=dict)
    ingress_namespaces: tuple[str, ...] = ()
    provenance: dict[str, str] = field(default_factory=dict)


def labels(spec: TenantSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_PREFIX + "owner": spec.owner_group,
        LABEL_PREFIX + "system": spec.system,
        LABEL_PREFIX + "service": spec.service,
        LABEL_PREFIX + "environment": spec.environment,
        LABEL_PREFIX + "cost-center": spec.cost_center,
    }


def render(spec: TenantSpec) -> list[dict[str, Any]]:
    """Every object the namespace needs, in the order they must be applied (the Namespace first)."""
    return [
        namespace(spec), resource_quota(spec), limit_range(spec), *network_policies(spec),
        service_account(spec), *role_bindings(spec),
    ]


def _meta(spec: TenantSpec, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels(spec)}
    if namespaced:
        meta["namespace"] = spec.namespace
    return meta


def namespace(spec: TenantSpec) -> dict[str, Any]:
    meta = _meta(spec, spec.namespace, namespaced=False)
    for mode in ("enforce", "audit", "warn"):
        meta["labels"][f"pod-security.kubernetes.io/{mode}"] = spec.pod_security
    meta["annotations"] = {OWNER_REF_ANNOTATION: spec.owner_ref, **spec.provenance}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def resource_quota(spec: TenantSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta(spec, "goldenpath-quota"),
            "spec": {"hard": dict(spec.quota)}}


def limit_range(spec: TenantSpec) -> dict[str, Any]:
    limit = {"type": "Container", "default": dict(spec.default_limit), "defaultRequest": dict(spec.default_request)}
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta(spec, "goldenpath-limits"),
            "spec": {"limits": [limit]}}


def network_policies(spec: TenantSpec) -> list[dict[str, Any]]:
    def policy(name: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(spec, name),
                "spec": body}

    same_namespace: list[dict[str, Any]] = [{"podSelector": {}}]
    dns_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": spec.dns_namespace}}}
    if spec.dns_pod_labels:
        dns_peer["podSelector"] = {"matchLabels": dict(spec.dns_pod_labels)}
    policies = [
        policy("default-deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy("allow-same-namespace", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                        "ingress": [{"from": same_namespace}], "egress": [{"to": same_namespace}]}),
        policy("allow-dns-egress", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [dns_peer],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}),
    ]
    if spec.ingress_namespaces:
        peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                 for ns in spec.ingress_namespaces]
        policies.append(policy("allow-ingress-controllers", {
            "podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": peers}]}))
    return policies


def service_account(spec: TenantSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(spec, spec.service_account)}


def role_bindings(spec: TenantSpec) -> list[dict[str, Any]]:
    def binding(name: str, group: str, role: str) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(spec, name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        }

    bindings = [binding("goldenpath-owners", spec.owner_group, spec.owner_cluster_role)]
    if spec.auditors_group:
        bindings.append(binding("goldenpath-auditors", spec.auditors_group, spec.auditors_cluster_role))
    return bindings


def object_name(manifest: dict[str, Any]) -> str:
    """`Kind/name` (and the namespace for namespaced objects), for messages and change records."""
    meta = manifest["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest['kind']}/{where}{meta['name']}"
