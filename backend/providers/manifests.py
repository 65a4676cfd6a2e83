"""Rules both cluster adapters share: schema validation, ownership, owned-field diffs, diffs for dry-runs."""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils as k8s_utils
import yaml
from referencing import Registry, Resource

from backend.errors import ConflictError, PolicyViolation
from backend.guardrails import MANAGED_BY, OWNER_REF_ANNOTATION, PROVENANCE_ANNOTATIONS, object_name
from backend.ownership import same_owner

ENVELOPE = ("apiVersion", "kind", "metadata", "status")


def validate(manifests: list[dict[str, Any]], version: str) -> None:
    """Fail closed: nothing is sent or committed unless every manifest passes the official schema (strict)."""
    for manifest in manifests:
        try:
            _validator(version, str(manifest.get("kind")), str(manifest.get("apiVersion"))).validate(manifest)
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(root)"
            raise PolicyViolation(f"{object_name(manifest)} breaks the Kubernetes {version} schema at {where}: "
                                  f"{exc.message}", rule="kubernetes-schema") from None
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.utils.VersionNotSupportedError) as exc:
            raise PolicyViolation(f"cannot validate {object_name(manifest)}: {getattr(exc, 'message', exc)}",
                                  rule="kubernetes-schema") from None


@functools.lru_cache(maxsize=128)
def _validator(version: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    """The strict schema kubernetes_validate.validate picks for this kind (the newest schema version not newer than
    `version`), compiled once: the library reads and parses its definitions file (megabytes) on every call, which
    a conformance pass would pay for every object of every service."""
    wanted = version[1:] if version.startswith("v") else version
    if k8s_utils.major_minor(wanted) > k8s_utils.latest_version():
        raise k8s_utils.VersionNotSupportedError(version=k8s_utils.major_minor(wanted))
    found = [v for v in k8s_utils.all_versions() if k8s_utils.major_minor(v) <= k8s_utils.major_minor(wanted)][-1]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{found}-local-strict"
    try:
        schema = k8s_utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", wanted)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(version=k8s_utils.major_minor(wanted), kind=kind,
                                                      api_version=api_version) from None
    definitions = k8s_utils.schema_contents(f"{folder}/_definitions.json", wanted)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def check_namespace_owner(current: dict[str, Any] | None, *, owner_ref: str, cluster: str) -> None:
    if current is None:
        return
    meta = current.get("metadata") or {}
    name = meta.get("name")
    if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") != MANAGED_BY:
        raise ConflictError(f"namespace {name} on cluster {cluster} exists and is not managed by Golden Path")
    owner = (meta.get("annotations") or {}).get(OWNER_REF_ANNOTATION)
    if owner and not same_owner(owner, owner_ref):  # full refs: user:default/team-a is not group:default/team-a
        raise ConflictError(f"namespace {name} on cluster {cluster} is owned by {owner}", owner=owner)


def owned_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) that makes `current` match `desired` on the fields Golden Path owns:
    its label and annotation keys (not provenance, not others' keys) and the whole of each body field it renders
    (spec, roleRef, subjects), not the fields the server adds (a Namespace's spec). Empty when nothing differs."""
    patch: dict[str, Any] = {}
    meta_patch: dict[str, Any] = {}
    for section in ("labels", "annotations"):
        have = (current.get("metadata") or {}).get(section) or {}
        want = {k: v for k, v in ((desired.get("metadata") or {}).get(section) or {}).items()
                if k not in PROVENANCE_ANNOTATIONS}
        changed = {k: v for k, v in want.items() if have.get(k) != v}
        if changed:
            meta_patch[section] = changed
    if meta_patch:
        patch["metadata"] = meta_patch
    for key in set(desired) - set(ENVELOPE):  # not what the server adds (a Namespace's spec.finalizers)
        diff = merge_diff(current.get(key), desired.get(key))
        if diff is not _SAME:
            patch[key] = diff
    return patch


def owned_differences(current: dict[str, Any], desired: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field owned_patch would set, with the value wanted and the value found (None: absent): labels and
    annotations key by key, body fields (spec, roleRef, subjects) whole."""
    out: list[dict[str, Any]] = []

    def walk(patch: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, value in sorted(patch.items()):
            here = (*path, key)
            if isinstance(value, dict) and value and key in {"metadata", "labels", "annotations"}:
                walk(value, here)
            else:
                out.append({"field": ".".join(here), "expected": _at(desired, here), "actual": _at(current, here)})

    walk(owned_patch(current, desired), ())
    return out


def _at(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        document = document.get(key) if isinstance(document, dict) else None
    return document


_SAME = object()


def merge_diff(have: Any, want: Any) -> Any:
    if have == want:
        return _SAME
    if isinstance(have, dict) and isinstance(want, dict):
        out = {}
        for key in {*have, *want}:
            sub = merge_diff(have.get(key), want.get(key)) if key in want else None
            if sub is not _SAME:
                out[key] = sub
        return out
    return want


def with_provenance_of(desired: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """GitOps files are rewritten whole: keep the provenance annotations the existing file was created with."""
    old = ((current or {}).get("metadata") or {}).get("annotations") or {}
    kept = {k: old[k] for k in PROVENANCE_ANNOTATIONS if k in old}
    if not kept:
        return desired
    annotations = {**(desired["metadata"].get("annotations") or {}), **kept}
    return {**desired, "metadata": {**desired["metadata"], "annotations": annotations}}


def to_yaml(manifest: dict[str, Any] | None) -> str:
    return "" if manifest is None else yaml.safe_dump(manifest, sort_keys=False)


def unified_diff(label: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"current/{label}", tofile=f"desired/{label}"))


def yaml_documents(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)
