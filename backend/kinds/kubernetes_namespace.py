"""A service's namespace per environment and cluster (goldenpath:kubernetes:namespace:create)."""

from __future__ import annotations

from collections.abc import Sequence

from backend.kinds.base import Links, ResourceKind, Row

PREFIX = "goldenpath.dev"


def _namespace(row: Row) -> str:
    return str((row.get("attributes") or {}).get("namespace") or "")


def _cluster(row: Row) -> str:
    return str((row.get("attributes") or {}).get("cluster") or "")


def _component(service: str, rows: Sequence[Row]) -> tuple[dict[str, str], Links]:
    """Backstage's Kubernetes plugin finds the service by one namespace, or by its label across several."""
    namespaces = [_namespace(row) for row in rows]
    if not namespaces:
        return {}, []
    annotations = {"backstage.io/kubernetes-id": service}
    if len(set(namespaces)) == 1:
        annotations["backstage.io/kubernetes-namespace"] = namespaces[0]
    else:
        annotations["backstage.io/kubernetes-label-selector"] = f"{PREFIX}/service={service}"
    return annotations, []


KIND = ResourceKind(
    id="kubernetes.namespace", catalog_type="kubernetes-namespace", main_object="kubernetes.Namespace",
    name_parts=lambda row: ("namespace", str(row.get("environment") or ""), _cluster(row)),
    title=lambda row: f"Namespace {row['locator']}",
    annotations=lambda row: {"backstage.io/kubernetes-namespace": _namespace(row), f"{PREFIX}/cluster": _cluster(row)},
    component=_component,
)
