"""Backstage catalog-model's validation rules (reference/backstage.md §5), to check every entity we serve.

The end-to-end suite also has a real Backstage catalog ingest the feed; these rules make the same check
cheap in unit tests and name the rule an entity breaks.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_LABEL = re.compile(r"^[a-z0-9]+(?:-+[a-z0-9]+)*$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
KIND = re.compile(r"^[a-zA-Z][a-z0-9A-Z]*$")
TAG = re.compile(r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$")
API_VERSIONS = {"backstage.io/v1alpha1", "backstage.io/v1beta1"}
REQUIRED_SPEC = {"Component": ("type", "lifecycle", "owner"), "Resource": ("type", "owner")}


def problems(entity: dict[str, Any]) -> list[str]:  # noqa: PLR0912 - one branch per rule reads best here
    out: list[str] = []
    extra = set(entity) - {"apiVersion", "kind", "metadata", "spec", "relations", "status"}
    if extra:
        out.append(f"foreign root fields {sorted(extra)}")
    if entity.get("apiVersion") not in API_VERSIONS:
        out.append(f"apiVersion {entity.get('apiVersion')!r}")
    kind = str(entity.get("kind", ""))
    if not (KIND.match(kind) and len(kind) <= 63):
        out.append(f"kind {kind!r}")
    meta = entity.get("metadata") or {}
    name = str(meta.get("name", ""))
    if not (NAME.match(name) and len(name) <= 63):
        out.append(f"metadata.name {name!r}")
    if "namespace" in meta and not DNS_LABEL.match(str(meta["namespace"])):
        out.append(f"metadata.namespace {meta['namespace']!r}")
    for key, value in (meta.get("labels") or {}).items():
        if not _key_ok(key):
            out.append(f"label key {key!r}")
        if value != "" and not (isinstance(value, str) and NAME.match(value) and len(value) <= 63):
            out.append(f"label value {value!r}")
    for key, value in (meta.get("annotations") or {}).items():
        if not _key_ok(key) or not isinstance(value, str):
            out.append(f"annotation {key!r}")
    for tag in meta.get("tags") or []:
        if not (isinstance(tag, str) and TAG.match(tag) and len(tag) <= 63):
            out.append(f"tag {tag!r}")
    for link in meta.get("links") or []:
        parsed = urlparse(str(link.get("url", "")))
        if not (parsed.scheme and parsed.netloc) or any(link.get(k) == "" for k in ("title", "icon", "type")):
            out.append(f"link {link!r}")
    for field in ("title", "description"):
        if field in meta and not isinstance(meta[field], str):
            out.append(f"metadata.{field} is not a string")
    spec = entity.get("spec") or {}
    for field in REQUIRED_SPEC.get(kind, ()):
        if not isinstance(spec.get(field), str) or not spec[field]:
            out.append(f"spec.{field} missing")
    return out


def _key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return False
    if prefix and not (DNS_SUBDOMAIN.match(prefix) and len(prefix) <= 253):
        return False
    return bool(NAME.match(name)) and len(name) <= 63
