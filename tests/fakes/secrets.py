"""FakeSecretsStore: an in-memory SecretsStore with the same convergence rules, counting writes."""

from __future__ import annotations

import threading

from backend.errors import ConflictError, UpstreamUnavailable
from backend.ownership import same_owner
from backend.providers.changes import Change, Outcome
from backend.providers.secrets import KubernetesRoleSpec, SecretPathSpec, SecretsStore


class FakeSecretsStore(SecretsStore):
    def __init__(self) -> None:
        self.mounts: set[str] = {"secret"}
        self.auth: set[str] = set()
        self.paths: dict[str, tuple[dict[str, str], set[str]]] = {}
        self.policies: dict[str, str] = {}
        self.roles: dict[str, KubernetesRoleSpec] = {}
        self.writes = 0
        self.down = False
        self._lock = threading.Lock()

    def _write(self, dry_run: bool) -> bool:
        if self.down:
            raise UpstreamUnavailable("fake vault is down", provider="vault")
        if not dry_run:
            with self._lock:
                self.writes += 1
        return not dry_run

    def ensure_kv_mount(self, mount: str, *, create: bool, dry_run: bool) -> Change:
        if mount in self.mounts:
            return Change("vault.kv-mount", mount, Outcome.UNCHANGED)
        if self._write(dry_run):
            self.mounts.add(mount)
        return Change("vault.kv-mount", mount, Outcome.CREATED)

    def ensure_secret_path(self, spec: SecretPathSpec, *, dry_run: bool) -> Change:
        locator = f"{spec.mount}/{spec.path}"
        current = self.paths.get(locator)
        if current and not _same(current[0].get("owner"), spec.custom_metadata.get("owner")):
            raise ConflictError(f"secrets path {locator} is owned by {current[0]['owner']}", owner=current[0]["owner"])
        if current and current[0] == spec.custom_metadata and set(spec.keys) <= current[1]:
            return Change("vault.secret-path", locator, Outcome.UNCHANGED)
        if self._write(dry_run):
            self.paths[locator] = (dict(spec.custom_metadata), set(spec.keys) | (current[1] if current else set()))
        return Change("vault.secret-path", locator, Outcome.UPDATED if current else Outcome.CREATED)

    def check_secret_path(self, mount: str, path: str, *, owner: str) -> bool:
        if self.down:
            raise UpstreamUnavailable("fake vault is down", provider="vault")
        current = self.paths.get(f"{mount}/{path}")
        if current and not _same(current[0].get("owner"), owner):
            raise ConflictError(f"secrets path {mount}/{path} is owned by {current[0]['owner']}",
                                owner=current[0]["owner"])
        return current is not None

    def ensure_policy(self, name: str, hcl: str, *, dry_run: bool) -> Change:
        if self.policies.get(name) == hcl:
            return Change("vault.policy", name, Outcome.UNCHANGED)
        existed = name in self.policies
        if self._write(dry_run):
            self.policies[name] = hcl
        return Change("vault.policy", name, Outcome.UPDATED if existed else Outcome.CREATED)

    def ensure_auth_method(self, mount: str, method: str, *, create: bool, dry_run: bool) -> Change:
        if mount in self.auth:
            return Change("vault.auth-method", mount, Outcome.UNCHANGED)
        if self._write(dry_run):
            self.auth.add(mount)
        return Change("vault.auth-method", mount, Outcome.CREATED)

    def ensure_kubernetes_role(self, spec: KubernetesRoleSpec, *, dry_run: bool) -> Change:
        locator = f"auth/{spec.mount}/role/{spec.name}"
        if self.roles.get(spec.name) == spec:
            return Change("vault.kubernetes-role", locator, Outcome.UNCHANGED)
        existed = spec.name in self.roles
        if self._write(dry_run):
            self.roles[spec.name] = spec
        return Change("vault.kubernetes-role", locator, Outcome.UPDATED if existed else Outcome.CREATED)

    def ui_url(self, mount: str, path: str) -> str:
        return f"http://fake-vault/ui/{mount}/{path}"

    def ping(self) -> None:
        if self.down:
            raise UpstreamUnavailable("fake vault is down", provider="vault")


def _same(recorded: str | None, wanted: str | None) -> bool:
    """The real store's rule: no recorded owner is anyone's; otherwise full entity refs are compared."""
    return not recorded or (wanted is not None and same_owner(recorded, wanted))
