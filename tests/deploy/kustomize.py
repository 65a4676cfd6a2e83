"""A small kustomize for the tests: renders deploy/kubernetes with no kubectl and no network. It supports exactly
what those kustomizations use and refuses anything else (an ignored field would render something kustomize does
not): resources (files and kustomization folders), namespace, labels, images, strategic-merge patches and
configMapGenerator (files and literals, with kustomize's content-hash suffix)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches", "configMapGenerator"}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                   "PriorityClass", "CustomResourceDefinition", "IngressClass", "RuntimeClass",
                   "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
# Lists a strategic merge patch merges item by item, by the key Kubernetes declares for them (patchMergeKey).
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
               "volumeMounts": "mountPath"}
# Lists whose merge rule this renderer does not copy (kustomize keys container ports by containerPort and
# protocol): a patch that touches them is refused rather than rendered differently.
_UNSUPPORTED_LISTS = {"ports", "envFrom", "ephemeralContainers", "imagePullSecrets", "finalizers"}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class KustomizeError(ValueError):
    """A kustomization this renderer cannot render as kustomize would."""


@dataclass
class _Resource:
    body: Manifest
    generated: str | None = None  # a configMapGenerator's name: gets kustomize's hash suffix when rendering ends

    @property
    def name(self) -> str:
        return str(self.generated or self.body["metadata"]["name"])

    @property
    def key(self) -> tuple[str, str, str]:
        return self.body["kind"], str(self.body["metadata"].get("namespace", "")), self.name


def render(directory: Path) -> list[Manifest]:
    """What `kubectl kustomize DIRECTORY` prints, as a list of objects (in the order the files list them)."""
    resources = _build(directory)
    _suffix_generated_names(resources)
    return [r.body for r in resources]


def _build(directory: Path) -> list[_Resource]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8")) or {}
    if unknown := set(kustomization) - _FIELDS:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    resources: list[_Resource] = []
    for entry in kustomization.get("resources") or []:
        path = directory / entry
        if path.is_dir():
            resources += _build(path)
        else:
            text = path.read_text(encoding="utf-8")
            resources += [_Resource(doc) for doc in yaml.safe_load_all(text) if doc]
    resources += [_generate(directory, spec) for spec in kustomization.get("configMapGenerator") or []]
    _check_unique(resources, directory)
    # kustomize's order: generators, then patches, then namespace, labels and images
    for entry in kustomization.get("patches") or []:
        _apply_patch(resources, _load_patch(directory, entry))
    if namespace := kustomization.get("namespace"):
        _set_namespace(resources, str(namespace))
    for entry in kustomization.get("labels") or []:
        _add_labels(resources, entry)
    for entry in kustomization.get("images") or []:
        _set_image(resources, entry)
    return resources


def _check_unique(resources: list[_Resource], directory: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for resource in resources:
        if resource.key in seen:
            raise KustomizeError(f"{directory}: {resource.key} is declared twice")
        seen.add(resource.key)


# -- configMapGenerator ------------------------------------------------------------------------------------------

def _generate(directory: Path, spec: dict[str, Any]) -> _Resource:
    if unknown := set(spec) - {"name", "files", "literals", "behavior"}:
        raise KustomizeError(f"configMapGenerator {spec.get('name')}: unsupported fields {sorted(unknown)}")
    if spec.get("behavior", "create") != "create":
        raise KustomizeError(f"configMapGenerator {spec['name']}: only behavior create is supported")
    data: dict[str, str] = {}
    for entry in spec.get("files") or []:
        key, _, path = entry.rpartition("=") if "=" in entry else (Path(entry).name, "", entry)
        data[key] = (directory / path).read_text(encoding="utf-8")
    for entry in spec.get("literals") or []:
        key, _, value = entry.partition("=")
        data[key] = value
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": spec["name"]}, "data": data}
    return _Resource(body, generated=str(spec["name"]))


def config_map_hash(data: Mapping[str, Any]) -> str:
    """kustomize's suffix (api/hasher): SHA-256 of Go's JSON of {data, kind, name} with a few hex digits
    swapped for letters. kustomize v5 looks the name up with a path its lookup does not split, so it hashes
    an empty name; kubectl 1.32 (kustomize v5.5) gives the same suffixes as this."""
    encoded = json.dumps({"data": data, "kind": "ConfigMap", "name": ""}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):  # Go escapes these for HTML
        encoded = encoded.replace(char, escaped)
    return hashlib.sha256(encoded.encode()).hexdigest()[:10].translate(str.maketrans("013ae", "ghkmt"))


def _suffix_generated_names(resources: list[_Resource]) -> None:
    renamed: dict[tuple[str, str], str] = {}
    for resource in resources:
        if resource.generated:
            new = f"{resource.generated}-{config_map_hash(resource.body.get('data') or {})}"
            resource.body["metadata"]["name"] = new
            renamed[(str(resource.body["metadata"].get("namespace", "")), resource.generated)] = new
    for resource in resources:
        namespace = str(resource.body["metadata"].get("namespace", ""))
        for pod in _pod_specs(resource.body):
            for ref in _config_map_refs(pod):
                ref["name"] = renamed.get((namespace, ref.get("name", "")), ref.get("name"))


def _pod_specs(body: Manifest) -> Iterator[dict[str, Any]]:
    if body["kind"] == "Pod":
        yield body["spec"]
    elif body["kind"] in _WORKLOADS:
        yield body["spec"]["template"]["spec"]
    elif body["kind"] == "CronJob":
        yield body["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _config_map_refs(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for volume in pod.get("volumes") or []:
        if "configMap" in volume:
            yield volume["configMap"]
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                yield source["configMap"]
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        for env in container.get("env") or []:
            if ref := (env.get("valueFrom") or {}).get("configMapKeyRef"):
                yield ref
        for source in container.get("envFrom") or []:
            if ref := source.get("configMapRef"):
                yield ref


# -- patches -----------------------------------------------------------------------------------------------------

def _load_patch(directory: Path, entry: dict[str, Any]) -> Manifest:
    if set(entry) - {"path", "patch"} or len(entry) != 1:
        raise KustomizeError(f"patch {entry}: only one of path or patch, without target or options")
    text = (directory / entry["path"]).read_text(encoding="utf-8") if "path" in entry else entry["patch"]
    patch = yaml.safe_load(text)
    if not isinstance(patch, dict) or "kind" not in patch:
        raise KustomizeError(f"patch {entry}: only strategic merge patches (an object with kind and name)")
    return patch


def _apply_patch(resources: list[_Resource], patch: Manifest) -> None:
    meta = patch.get("metadata") or {}
    targets = [r for r in resources if r.body["kind"] == patch["kind"] and r.name == meta.get("name")
               and meta.get("namespace", r.body["metadata"].get("namespace")) == r.body["metadata"].get("namespace")]
    if len(targets) != 1:
        raise KustomizeError(f"patch for {patch['kind']}/{meta.get('name')} matches {len(targets)} resources")
    target = targets[0]
    body = strategic_merge(target.body, {k: v for k, v in patch.items() if k != "metadata"})
    body["metadata"] = strategic_merge(target.body["metadata"], {k: v for k, v in meta.items() if k != "name"})
    target.body = body


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes' strategic merge, the part these patches need: maps merge recursively (null deletes a key),
    lists with a merge key merge item by item (the patch's items first, in its order, then the original's others,
    as kustomize orders them), other lists are replaced."""
    if isinstance(patch, dict):
        if any(str(k).startswith("$") for k in patch):
            raise KustomizeError(f"{field}: patch directives ($patch, $setElementOrder...) are not supported")
        merged = dict(original) if isinstance(original, dict) else {}
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(merged.get(key), value, str(key))
        return merged
    if isinstance(patch, list):
        if field in _UNSUPPORTED_LISTS:
            raise KustomizeError(f"patches to {field} lists are not supported (their merge rule is not copied)")
        if field not in _MERGE_KEYS or not isinstance(original, list):
            return patch
        key = _MERGE_KEYS[field]
        by_key = {item[key]: item for item in original}
        patched = [strategic_merge(by_key.get(item[key]), item, field + "[]") for item in patch]
        named = {item[key] for item in patch}
        return patched + [item for item in original if item[key] not in named]
    return patch


# -- transformers ------------------------------------------------------------------------------------------------

def _set_namespace(resources: list[_Resource], namespace: str) -> None:
    for resource in resources:
        body = resource.body
        if body["kind"] == "Namespace":  # kustomize renames a Namespace object to the kustomization's namespace
            body["metadata"]["name"] = namespace
        elif body["kind"] not in _CLUSTER_SCOPED:
            body["metadata"]["namespace"] = namespace
        for subject in body.get("subjects") or []:  # kustomize's rule for these depends on context: refuse them
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") != namespace:
                raise KustomizeError(f"{body['kind']}/{body['metadata']['name']}: give ServiceAccount subject "
                                     f"{subject.get('name')} namespace {namespace} explicitly")


def _add_labels(resources: list[_Resource], entry: dict[str, Any]) -> None:
    if set(entry) - {"pairs"} or entry.get("includeSelectors") or entry.get("includeTemplates"):
        raise KustomizeError(f"labels {entry}: only pairs (metadata labels) are supported")
    for resource in resources:
        resource.body["metadata"].setdefault("labels", {}).update(
            {str(k): str(v) for k, v in entry["pairs"].items()})


def _set_image(resources: list[_Resource], entry: dict[str, Any]) -> None:
    if set(entry) - {"name", "newName", "newTag", "digest"}:
        raise KustomizeError(f"images {entry}: only name, newName, newTag and digest are supported")
    for resource in resources:
        for pod in _pod_specs(resource.body):
            for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
                name, reference = split_image(container["image"])
                if name != entry["name"]:
                    continue
                new = entry.get("newName", name)
                if "digest" in entry:
                    container["image"] = f"{new}@{entry['digest']}"
                elif "newTag" in entry:
                    container["image"] = f"{new}:{entry['newTag']}"
                else:
                    container["image"] = new + reference


def split_image(image: str) -> tuple[str, str]:
    """`registry:5000/team/app:1.2@sha256:...` → (`registry:5000/team/app`, `:1.2@sha256:...`)."""
    name, at, digest = image.partition("@")
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon:] + at + digest
    return name, at + digest
