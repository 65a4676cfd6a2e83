"""Backstage catalog entities from the inventory (pure data).

A Component per registered service; a Resource per repository, secrets path and namespace made for it,
the Component `dependsOn` each. Every name, tag and label obeys catalog-model's rules (names that would not
are shortened with a digest, tags that would not are dropped); user text is only ever a YAML value, written
by a YAML emitter, so it cannot add keys or documents.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from backend.kinds import resource_kinds

API_VERSION = "backstage.io/v1alpha1"
PREFIX = "goldenpath.dev"
ENTITY_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")  # fullmatch
TAG = re.compile(r"[a-z0-9:+#]+(-[a-z0-9:+#]+)*")  # fullmatch
MAX_NAME = 63
SERVICE_KIND = "service"


def entity_name(*parts: str) -> str:
    """A valid metadata.name from `parts`, joined by '.' (which no service, environment or cluster name holds, so
    distinct parts give distinct names): lowercased, invalid characters folded to '-', and if longer than 63
    characters, cut and suffixed with a digest of the whole so distinct inputs stay distinct."""
    raw = ".".join(p for p in parts if p)
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._") or "x"
    if len(name) > MAX_NAME or not ENTITY_NAME.fullmatch(name):
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[:MAX_NAME - 9].rstrip('-._')}-{digest}"
    return name


def entities(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """All entities for the inventory `rows` (dicts with kind, locator, service, system, owner, environment,
    attributes), in a stable order: each service's Component, then its Resources. A row of a kind nothing
    declares (backend.kinds) is not drawn."""
    kinds = resource_kinds()
    services: dict[str, dict[str, Any]] = {}
    made_for: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["kind"] == SERVICE_KIND:
            services[row["locator"]] = row
        elif row["kind"] in kinds and row.get("service") and row.get("owner"):
            made_for[row["service"]].append(row)
    out: list[dict[str, Any]] = []
    for name in sorted(set(services) | set(made_for)):
        service = services.get(name)
        cost_center = str((service or {}).get("attributes", {}).get("costCenter") or "")
        resources = [resource_entity(row, cost_center) for row in sorted(made_for[name], key=_order)]
        if service is not None:
            out.append(component_entity(service, made_for[name], [r["metadata"]["name"] for r in resources]))
        out.extend(resources)
    return out


def component_entity(service: dict[str, Any], resources: list[dict[str, Any]], refs: list[str]) -> dict[str, Any]:
    attrs = service.get("attributes") or {}
    name = service["locator"]
    links: list[dict[str, str]] = [{"url": str(link["url"]), "title": str(link.get("title") or link["url"])}
                                   for link in attrs.get("links") or []]
    annotations = _plugin_annotations(name, sorted(resources, key=_order), links)
    annotations.update(conformance_annotations(service, name))
    metadata: dict[str, Any] = {"name": name, "annotations": annotations}
    for key in ("title", "description"):
        if attrs.get(key):
            metadata[key] = str(attrs[key])
    if tags := [t for t in (str(t) for t in attrs.get("tags") or []) if TAG.fullmatch(t) and len(t) <= MAX_NAME]:
        metadata["tags"] = tags
    if links:
        metadata["links"] = links
    if labels := _labels(str(attrs.get("costCenter") or "")):
        metadata["labels"] = labels
    spec: dict[str, Any] = {"type": str(attrs.get("type") or "service"),
                            "lifecycle": str(attrs.get("lifecycle") or "experimental"), "owner": service["owner"]}
    if service.get("system"):
        spec["system"] = service["system"]
    if refs:
        spec["dependsOn"] = [f"resource:default/{ref}" for ref in refs]
    return {"apiVersion": API_VERSION, "kind": "Component", "metadata": metadata, "spec": spec}


def _plugin_annotations(name: str, resources: list[dict[str, Any]], links: list[dict[str, str]]) -> dict[str, str]:
    """The annotations Backstage plugins read (GitHub, source, TechDocs, Vault, Kubernetes), each kind adding its
    own (in kind order); adds links."""
    annotations: dict[str, str] = {f"{PREFIX}/managed-by": "goldenpath"}
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in resources:
        by_kind[row["kind"]].append(row)
    kinds = resource_kinds()
    for kind_id in sorted(by_kind):
        added, more_links = kinds[kind_id].component(name, by_kind[kind_id])
        annotations.update({key: value for key, value in added.items() if key not in annotations})
        links.extend(more_links)
    return annotations


def resource_entity(row: dict[str, Any], cost_center: str) -> dict[str, Any]:
    kind = resource_kinds()[row["kind"]]
    env = row.get("environment") or ""
    annotations = {f"{PREFIX}/locator": row["locator"], f"{PREFIX}/managed-by": "goldenpath",
                   **conformance_annotations(row, row["service"]), **kind.annotations(row)}
    metadata: dict[str, Any] = {"name": entity_name(row["service"], *kind.name_parts(row)), "title": kind.title(row),
                                "annotations": annotations}
    labels = _labels(cost_center)
    if env and ENTITY_NAME.fullmatch(env):
        labels[f"{PREFIX}/environment"] = env
    if labels:
        metadata["labels"] = labels
    if links := kind.links(row):
        metadata["links"] = links
    spec: dict[str, Any] = {"type": kind.catalog_type, "owner": row["owner"]}
    if row.get("system"):
        spec["system"] = row["system"]
    return {"apiVersion": API_VERSION, "kind": "Resource", "metadata": metadata, "spec": spec}


def conformance_annotations(row: dict[str, Any], service: str) -> dict[str, str]:
    """The last conformance check's status, the time of the check that found it (so a pass that finds the same
    changes nothing in the feed), and where the full report is (the service's, on Golden Path's API)."""
    status = row.get("conformance")
    if not status:
        return {}
    return {f"{PREFIX}/conformance": str(status), f"{PREFIX}/checked-at": str(row.get("checkedAt") or ""),
            f"{PREFIX}/conformance-report": f"/api/v1/services/{service}/conformance"}


def _labels(cost_center: str) -> dict[str, str]:
    if cost_center and len(cost_center) <= MAX_NAME and ENTITY_NAME.fullmatch(cost_center):
        return {f"{PREFIX}/cost-center": cost_center}
    return {}


def _order(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["kind"], row.get("environment") or "", row["locator"])
