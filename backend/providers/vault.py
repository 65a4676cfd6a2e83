"""HvacSecretsStore: the SecretsStore port over hvac, for HashiCorp Vault and OpenBao.

hvac errors are translated once, in `_vault_call`; nothing from a Vault response body
(secret data, tokens) is ever put into a Change, a log line or an error detail.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import hvac
import hvac.exceptions
import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from backend.crashpoints import crashpoint
from backend.errors import ConflictError, UpstreamError, UpstreamUnavailable, cap
from backend.ownership import same_owner
from backend.providers.changes import Change, Outcome
from backend.providers.journal import intend
from backend.providers.secrets import InitialValues, KubernetesRoleSpec, SecretPathSpec, SecretsStore

PROVIDER = "vault"
MANAGED_BY = ("managed-by", "goldenpath")
_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_transient = retry(
    retry=retry_if_exception_type(UpstreamUnavailable),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.1, max=1),
    reraise=True,
)


class HvacSecretsStore(SecretsStore):
    def __init__(self, *, addr: str, token: str, timeout: float = 10.0, ui_url: str | None = None) -> None:
        self._client = hvac.Client(url=addr, token=token, timeout=timeout)
        self._ui_base = (ui_url or addr).rstrip("/")

    @_transient
    def ensure_kv_mount(self, mount: str, *, create: bool, dry_run: bool) -> Change:
        with _vault_call(f"list secrets engines for mount {mount!r}"):
            mounts = self._client.sys.list_mounted_secrets_engines()["data"]
        current = mounts.get(f"{mount}/")
        if current is not None:
            if current.get("type") != "kv" or (current.get("options") or {}).get("version") != "2":
                raise UpstreamError(f"mount {mount!r} exists but is not a KV version 2 engine", provider=PROVIDER)
            return Change("vault.kv-mount", mount, Outcome.UNCHANGED)
        if not create:
            raise UpstreamError(
                f"KV mount {mount!r} does not exist and vault.create_kv_mount is off", provider=PROVIDER
            )
        change = Change("vault.kv-mount", mount, Outcome.CREATED)
        if not dry_run:
            intend(change)
            with _vault_call(f"enable KV v2 mount {mount!r}"):
                self._client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        return change

    @_transient
    def ensure_secret_path(self, spec: SecretPathSpec, *, dry_run: bool) -> Change:
        locator = f"{spec.mount}/{spec.path}"
        metadata = self._read_metadata(spec.mount, spec.path)
        wanted_meta = {**spec.custom_metadata, MANAGED_BY[0]: MANAGED_BY[1]}
        changed: list[str] = []
        if metadata is None:
            outcome = Outcome.CREATED
            changed.append("metadata")
            wanted_meta = {**spec.provenance, **wanted_meta}
            present_keys: set[str] = set()
            current_version = 0
        else:
            _refuse_foreign_owner(metadata, locator, wanted=spec.custom_metadata.get(spec.owner_key),
                                  owner_key=spec.owner_key)
            current_meta = metadata.get("custom_metadata") or {}
            if any(current_meta.get(k) != v for k, v in wanted_meta.items()) or (
                metadata.get("max_versions") != spec.max_versions
            ):
                changed.append("metadata")
            wanted_meta = {**spec.provenance, **current_meta, **wanted_meta}
            current_version = int(metadata.get("current_version") or 0)
            present_keys = self._read_keys(spec) if current_version else set()
            outcome = Outcome.UPDATED
        missing = [key for key in spec.keys if key not in present_keys]
        changed.extend(f"key:{key}" for key in missing)
        if not changed:
            return Change("vault.secret-path", locator, Outcome.UNCHANGED)
        change = Change("vault.secret-path", locator, outcome, fields=tuple(changed))
        if not dry_run:
            intend(change)
            self._write_path(spec, wanted_meta if "metadata" in changed else None, missing, current_version)
        return change

    @_transient
    def ensure_policy(self, name: str, hcl: str, *, dry_run: bool) -> Change:
        with _vault_call(f"read policy {name!r}"):
            try:
                current = self._client.sys.read_policy(name)["data"]["rules"]
            except hvac.exceptions.InvalidPath:
                current = None
        if current is not None and current.strip() == hcl.strip():
            return Change("vault.policy", name, Outcome.UNCHANGED)
        change = Change("vault.policy", name, Outcome.CREATED if current is None else Outcome.UPDATED,
                        fields=("rules",), details={} if current is None else {"differences": [
                            {"field": "rules", "expected": hcl, "actual": current}]})
        if not dry_run:
            intend(change)
            with _vault_call(f"write policy {name!r}"):
                self._client.sys.create_or_update_policy(name, hcl)
        return change

    @_transient
    def ensure_auth_method(self, mount: str, method: str, *, create: bool, dry_run: bool) -> Change:
        with _vault_call("list auth methods"):
            methods = self._client.sys.list_auth_methods()["data"]
        current = methods.get(f"{mount}/")
        if current is not None:
            if current.get("type") != method:
                raise UpstreamError(f"auth mount {mount!r} is not a {method} auth method", provider=PROVIDER)
            return Change("vault.auth-method", mount, Outcome.UNCHANGED)
        if not create:
            raise UpstreamError(
                f"{method} auth mount {mount!r} does not exist and enabling it is off", provider=PROVIDER
            )
        change = Change("vault.auth-method", mount, Outcome.CREATED)
        if not dry_run:
            intend(change)
            with _vault_call(f"enable {method} auth at {mount!r}"):
                self._client.sys.enable_auth_method(method, path=mount)
        return change

    @_transient
    def ensure_kubernetes_role(self, spec: KubernetesRoleSpec, *, dry_run: bool) -> Change:
        locator = f"auth/{spec.mount}/role/{spec.name}"
        with _vault_call(f"read kubernetes role {spec.name!r}"):
            try:
                current: dict[str, Any] | None = self._client.auth.kubernetes.read_role(
                    spec.name, mount_point=spec.mount
                )
            except hvac.exceptions.InvalidPath:
                current = None
        differing = _role_differences(spec, current) if current is not None else [{"field": "role"}]
        if not differing:
            return Change("vault.kubernetes-role", locator, Outcome.UNCHANGED)
        change = Change("vault.kubernetes-role", locator, Outcome.CREATED if current is None else Outcome.UPDATED,
                        fields=tuple(d["field"] for d in differing),
                        details={} if current is None else {"differences": differing})
        if not dry_run:
            intend(change)
            with _vault_call(f"write kubernetes role {spec.name!r}"):
                self._client.auth.kubernetes.create_role(
                    spec.name,
                    bound_service_account_names=list(spec.service_account_names),
                    bound_service_account_namespaces=list(spec.namespaces),
                    policies=list(spec.policies),
                    ttl=spec.token_ttl,
                    mount_point=spec.mount,
                )
        return change

    def ui_url(self, mount: str, path: str) -> str:
        return f"{self._ui_base}/ui/vault/secrets/{quote(mount, safe='')}/kv/{quote(path, safe='')}"

    def ping(self) -> None:
        with _vault_call("check health"):
            health = self._client.sys.read_health_status(method="GET")
            self._client.auth.token.lookup_self()
        if isinstance(health, dict) and health.get("sealed"):
            raise UpstreamUnavailable("Vault is sealed", provider=PROVIDER)

    @_transient
    def check_secret_path(self, mount: str, path: str, *, owner: str) -> bool:
        metadata = self._read_metadata(mount, path)
        if metadata is None:
            return False
        _refuse_foreign_owner(metadata, f"{mount}/{path}", wanted=owner, owner_key=SecretPathSpec.owner_key)
        return True

    def _read_metadata(self, mount: str, path: str) -> dict[str, Any] | None:
        with _vault_call(f"read metadata of {mount}/{path}"):
            try:
                data: dict[str, Any] = self._client.secrets.kv.v2.read_secret_metadata(path, mount_point=mount)["data"]
            except hvac.exceptions.InvalidPath:
                return None
        return data

    def _read_keys(self, spec: SecretPathSpec) -> set[str]:
        with _vault_call(f"read key names of {spec.mount}/{spec.path}"):
            try:
                response = self._client.secrets.kv.v2.read_secret_version(
                    spec.path, mount_point=spec.mount, raise_on_deleted_version=False
                )
            except hvac.exceptions.InvalidPath:
                return set()
        return set((response["data"] or {}).get("data") or {})

    def _write_path(
        self, spec: SecretPathSpec, metadata: dict[str, str] | None, missing: list[str], version: int
    ) -> None:
        kv = self._client.secrets.kv.v2
        if metadata is not None:
            with _vault_call(f"write metadata of {spec.mount}/{spec.path}"):
                kv.update_metadata(
                    spec.path, max_versions=spec.max_versions, custom_metadata=metadata,
                    mount_point=spec.mount,
                )
            crashpoint("vault.after-metadata")
        if not missing:
            return
        values = {key: _initial_value(spec.initial_values) for key in missing}
        with _vault_call(f"write initial keys of {spec.mount}/{spec.path}"):
            if version == 0:
                try:
                    kv.create_or_update_secret(spec.path, secret=values, cas=0, mount_point=spec.mount)
                except hvac.exceptions.InvalidRequest as exc:
                    if "check-and-set" not in str(exc):
                        raise
                    # another run wrote the path first: read it again (it converges, or is another owner's)
                    raise UpstreamUnavailable(f"{spec.mount}/{spec.path} was written concurrently",
                                              provider=PROVIDER, retry_after=1) from None
            else:
                kv.patch(spec.path, secret=values, mount_point=spec.mount)


def _refuse_foreign_owner(metadata: dict[str, Any], locator: str, *, wanted: str | None, owner_key: str) -> None:
    current = metadata.get("custom_metadata") or {}
    owner = current.get(owner_key)
    if current.get(MANAGED_BY[0]) != MANAGED_BY[1] and int(metadata.get("current_version") or 0) > 0:
        raise ConflictError(
            f"secrets path {locator} already exists and is not managed by Golden Path"
            + (f" (owner: {owner})" if owner else ""),
            owner=owner,
        )
    if owner and (wanted is None or not same_owner(owner, wanted)):  # compared as full entity refs
        raise ConflictError(f"secrets path {locator} is owned by {owner}", owner=owner)


def _role_differences(spec: KubernetesRoleSpec, current: dict[str, Any]) -> list[dict[str, Any]]:
    wanted = {
        "bound_service_account_names": sorted(spec.service_account_names),
        "bound_service_account_namespaces": sorted(spec.namespaces),
        "token_policies": sorted(spec.policies),
        "token_ttl": duration_seconds(spec.token_ttl),
    }
    have = {
        "bound_service_account_names": sorted(current.get("bound_service_account_names") or []),
        "bound_service_account_namespaces": sorted(current.get("bound_service_account_namespaces") or []),
        "token_policies": sorted(current.get("token_policies") or current.get("policies") or []),
        "token_ttl": int(current.get("token_ttl") or current.get("ttl") or 0),
    }
    return [{"field": name, "expected": value, "actual": have[name]} for name, value in wanted.items()
            if have[name] != value]


def duration_seconds(value: str) -> int:
    match = _DURATION.fullmatch(value.strip())
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _initial_value(mode: InitialValues) -> str:
    return secrets.token_urlsafe(32) if mode is InitialValues.RANDOM else ""


@contextmanager
def _vault_call(what: str) -> Iterator[None]:
    try:
        yield
    except (ConflictError, UpstreamError):
        raise
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise UpstreamUnavailable(f"Vault is unreachable while trying to {what}", provider=PROVIDER) from exc
    except (hvac.exceptions.VaultDown, hvac.exceptions.BadGateway, hvac.exceptions.RateLimitExceeded) as exc:
        raise UpstreamUnavailable(f"Vault is unavailable while trying to {what}", provider=PROVIDER) from exc
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
        raise UpstreamError(f"Vault denied permission to {what}", provider=PROVIDER) from exc
    except hvac.exceptions.VaultError as exc:
        reason = cap("; ".join(str(e) for e in (exc.errors or [])) or type(exc).__name__, 200)
        raise UpstreamError(f"Vault refused to {what}: {reason}", provider=PROVIDER) from exc
