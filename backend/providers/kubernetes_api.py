"""KubernetesCluster: the ClusterTarget port over the official `kubernetes` client (direct mode).

Converges with read → create or merge-patch of owned fields (field manager `goldenpath`); no
server-side apply, so it also works against API emulators. SDK errors are translated in `_api_call`.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.client.exceptions import ApiException

from backend.errors import ConflictError, UpstreamError, UpstreamUnavailable, cap
from backend.guardrails import object_name
from backend.kube_settings import ClusterSettings
from backend.providers.changes import Change, Outcome
from backend.providers.clusters import ClusterTarget, TenantResult
from backend.providers.journal import intend
from backend.providers.manifests import check_namespace_owner, owned_differences, owned_patch, to_yaml, unified_diff

PROVIDER = "kubernetes"
FIELD_MANAGER = "goldenpath"
MANAGED = ("app.kubernetes.io/managed-by", "goldenpath")  # the label on every object Golden Path renders
LIST_PAGE = 500
# kind → (API class, the method listing it across namespaces)
LISTS: dict[str, tuple[str, str]] = {
    "Namespace": ("CoreV1Api", "list_namespace"),
    "ResourceQuota": ("CoreV1Api", "list_resource_quota_for_all_namespaces"),
    "LimitRange": ("CoreV1Api", "list_limit_range_for_all_namespaces"),
    "ServiceAccount": ("CoreV1Api", "list_service_account_for_all_namespaces"),
    "NetworkPolicy": ("NetworkingV1Api", "list_network_policy_for_all_namespaces"),
    "RoleBinding": ("RbacAuthorizationV1Api", "list_role_binding_for_all_namespaces"),
}
# kind → (API class, method suffix, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("CoreV1Api", "namespace", False),
    "ResourceQuota": ("CoreV1Api", "namespaced_resource_quota", True),
    "LimitRange": ("CoreV1Api", "namespaced_limit_range", True),
    "ServiceAccount": ("CoreV1Api", "namespaced_service_account", True),
    "NetworkPolicy": ("NetworkingV1Api", "namespaced_network_policy", True),
    "RoleBinding": ("RbacAuthorizationV1Api", "namespaced_role_binding", True),
}


def api_client_for(cluster: ClusterSettings) -> kubernetes.client.ApiClient:
    if cluster.server:
        configuration = kubernetes.client.Configuration()
        configuration.host = cluster.server
        if cluster.token_file:
            with open(cluster.token_file, encoding="utf-8") as handle:
                configuration.api_key = {"authorization": "Bearer " + handle.read().strip()}
        return kubernetes.client.ApiClient(configuration)
    if cluster.in_cluster:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        return kubernetes.client.ApiClient()
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=cluster.kubeconfig, context=cluster.context)
    return client


class KubernetesCluster(ClusterTarget):
    mode = "direct"

    def __init__(self, name: str, client: kubernetes.client.ApiClient) -> None:
        self.name = name
        self._apis = {cls: getattr(kubernetes.client, cls)(client) for cls, _, _ in KINDS.values()}
        self._listed = threading.local()  # this thread's bulk read: {(kind, namespace, name): object} per kind

    @contextmanager
    def batched_reads(self) -> Iterator[None]:
        """One list per kind (every object labelled managed-by goldenpath, in every namespace, in pages) instead
        of a read per object. An object not in a list (deleted, or its label taken off) is read on its own, and
        one this thread writes is read afresh next, so the lists only ever save calls."""
        listed: dict[str, dict[tuple[str | None, str], dict[str, Any]]] = {}
        for kind in KINDS:
            try:
                listed[kind] = self._list(kind)
            except (UpstreamError, UpstreamUnavailable):  # not listable (RBAC, outage): read one by one
                continue
        self._listed.kinds = listed
        try:
            yield
        finally:
            self._listed.kinds = None

    def _list(self, kind: str) -> dict[tuple[str | None, str], dict[str, Any]]:
        api_class, method = LISTS[kind]
        found: dict[tuple[str | None, str], dict[str, Any]] = {}
        token: str | None = None
        for _ in range(10_000):
            kwargs: dict[str, Any] = {"label_selector": "=".join(MANAGED), "limit": LIST_PAGE,
                                      "_preload_content": False, "_request_timeout": 60}
            if token:
                kwargs["_continue"] = token
            with _api_call(f"list {kind} objects on cluster {self.name}"):
                page = json.loads(getattr(self._apis[api_class], method)(**kwargs).data)
            for item in page.get("items") or []:
                meta = item.get("metadata") or {}
                if (meta.get("labels") or {}).get(MANAGED[0]) == MANAGED[1] and meta.get("name"):
                    found[(meta.get("namespace"), meta["name"])] = item  # a server ignoring the selector: filtered
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return found
        raise UpstreamError(f"listing {kind} objects on cluster {self.name} did not end", provider=PROVIDER)

    def ensure_tenant(
        self, manifests: list[dict[str, Any]], *, owner_ref: str, message: str, dry_run: bool,
        on_change: Callable[[Change], object],
    ) -> TenantResult:
        namespace = manifests[0]
        # a write reads afresh: the pass's lists may be minutes old, and the owner check guards the write
        current_ns = self._read(namespace, listed=dry_run)
        check_namespace_owner(current_ns, owner_ref=owner_ref, cluster=self.name)
        changes, diffs, writes = [], [], 0
        for manifest in manifests:
            current = current_ns if manifest is namespace else (
                self._read(manifest, listed=dry_run) if current_ns else None)
            change, diff, made = self._converge(manifest, current, dry_run=dry_run)
            on_change(change)
            changes.append(change)
            writes += made
            if diff:
                diffs.append(diff)
        return TenantResult(changes=changes, diff="".join(diffs), writes=writes)

    def check_namespace(self, namespace: str, *, owner_ref: str) -> bool:
        current = self._read({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        check_namespace_owner(current, owner_ref=owner_ref, cluster=self.name)
        return current is not None

    def _converge(
        self, manifest: dict[str, Any], current: dict[str, Any] | None, *, dry_run: bool
    ) -> tuple[Change, str, int]:
        label = object_name(manifest)
        locator = f"{self.name}:{label}"
        if current is None:
            created = Change(f"kubernetes.{manifest['kind']}", locator, Outcome.CREATED)
            if not dry_run:
                intend(created)
                self._call(manifest, "create", body=manifest)
            return created, unified_diff(label, "", to_yaml(manifest)), 0 if dry_run else 1
        patch = owned_patch(current, manifest)
        if not patch:
            return Change(f"kubernetes.{manifest['kind']}", locator, Outcome.UNCHANGED), "", 0
        writes = 0
        fields = tuple(sorted(_paths(patch)))
        updated = Change(f"kubernetes.{manifest['kind']}", locator, Outcome.UPDATED, fields=fields,
                         details={"differences": owned_differences(current, manifest)})
        if not dry_run:
            intend(updated)
            if "roleRef" in patch:  # immutable on real clusters: replace the binding
                self._call(manifest, "delete")
                self._call(manifest, "create", body=manifest)
                writes = 2
            else:
                self._call(manifest, "patch", body=patch)
                writes = 1
        return updated, unified_diff(label, to_yaml(_visible(current, manifest)), to_yaml(manifest)), writes

    def _read(self, manifest: dict[str, Any], *, listed: bool = True) -> dict[str, Any] | None:
        """The object as the cluster holds it; `listed`: from this thread's pass list when it has it (reads only,
        never a read a write depends on)."""
        lists = (getattr(self._listed, "kinds", None) or {}) if listed else {}
        listed_kind = lists.get(manifest["kind"])
        meta = manifest["metadata"]
        if listed_kind is not None and (found := listed_kind.get((meta.get("namespace"), meta["name"]))) is not None:
            return {"apiVersion": manifest["apiVersion"], "kind": manifest["kind"], **copy.deepcopy(found)}
        try:
            response = self._call(manifest, "read")
        except _NotFoundError:
            return None
        current: dict[str, Any] = json.loads(response.data)
        return current

    def _call(self, manifest: dict[str, Any], verb: str, body: dict[str, Any] | None = None) -> Any:
        api_class, suffix, namespaced = KINDS[manifest["kind"]]
        method: Callable[..., Any] = getattr(self._apis[api_class], f"{verb}_{suffix}")
        meta = manifest["metadata"]
        args: list[Any] = [] if verb == "create" else [meta["name"]]
        if namespaced:
            args.append(meta["namespace"])
        kwargs: dict[str, Any] = {"_preload_content": False, "_request_timeout": 30}
        if body is not None:
            kwargs["body"] = body
        if verb in {"create", "patch"}:
            kwargs["field_manager"] = FIELD_MANAGER
        if verb != "read" and (listed := (getattr(self._listed, "kinds", None) or {}).get(manifest["kind"])):
            listed.pop((meta.get("namespace"), meta["name"]), None)  # written: read it afresh next time
        with _api_call(f"{verb} {object_name(manifest)} on cluster {self.name}"):
            return method(*args, **kwargs)


class _NotFoundError(Exception):
    pass


def _paths(patch: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in patch.items():
        if isinstance(value, dict) and value and key in {"metadata", "labels", "annotations"}:
            yield from _paths(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _visible(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The current object restricted to what we render, so a dry-run diff shows only our fields."""
    meta = current.get("metadata") or {}
    shown: dict[str, Any] = {"apiVersion": current.get("apiVersion", desired["apiVersion"]),
                             "kind": current.get("kind", desired["kind"]),
                             "metadata": {k: meta[k] for k in desired["metadata"] if k in meta}}
    shown.update({k: current[k] for k in desired if k not in shown and k in current})
    return shown


@contextmanager
def _api_call(what: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise _NotFoundError(what) from None
        reason = _reason(exc)
        if exc.status == 409:
            raise ConflictError(f"Kubernetes refused to {what}: {reason}") from None
        if exc.status in {401, 403}:
            raise UpstreamError(f"Kubernetes denied permission to {what}", provider=PROVIDER) from None
        if exc.status in {429, 500, 502, 503, 504}:
            raise UpstreamUnavailable(f"Kubernetes is unavailable ({exc.status}) to {what}",
                                      provider=PROVIDER) from None
        raise UpstreamError(f"Kubernetes refused to {what}: {reason}", provider=PROVIDER) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise UpstreamUnavailable(f"Kubernetes is unreachable to {what}: {type(exc).__name__}",
                                  provider=PROVIDER) from None


def _reason(exc: ApiException) -> str:
    try:
        return cap(str(json.loads(exc.body or "").get("message", exc.reason)), 200)
    except (TypeError, ValueError):
        return cap(str(exc.reason), 200)
