"""The SecretsStore port: what actions may ask of Vault/OpenBao, in convergent ensure_* terms.

Every ensure_* method reads the current state, writes only what differs, and returns the
Change it made; with dry_run=True it writes nothing and returns the Change it would make.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum

from backend.providers.changes import Change


class InitialValues(StrEnum):
    RANDOM = "random"
    EMPTY = "empty"


@dataclass(frozen=True)
class SecretPathSpec:
    mount: str
    path: str
    custom_metadata: dict[str, str]
    max_versions: int
    provenance: dict[str, str] = field(default_factory=dict)  # written once, when the path is created
    keys: tuple[str, ...] = ()
    initial_values: InitialValues = InitialValues.RANDOM
    owner_key: str = "owner"


@dataclass(frozen=True)
class KubernetesRoleSpec:
    mount: str
    name: str
    service_account_names: tuple[str, ...]
    namespaces: tuple[str, ...]
    policies: tuple[str, ...]
    token_ttl: str
    extra: dict[str, str] = field(default_factory=dict)


class SecretsStore(ABC):
    """Port for a Vault-compatible secrets manager."""

    @abstractmethod
    def ensure_kv_mount(self, mount: str, *, create: bool, dry_run: bool) -> Change: ...

    @abstractmethod
    def ensure_secret_path(self, spec: SecretPathSpec, *, dry_run: bool) -> Change: ...

    @abstractmethod
    def check_secret_path(self, mount: str, path: str, *, owner: str) -> bool:
        """Read only: whether the path exists and is ours to converge (False: free). A path another team owns,
        or that Golden Path did not make, is a ConflictError, as in ensure_secret_path."""

    @abstractmethod
    def ensure_policy(self, name: str, hcl: str, *, dry_run: bool) -> Change: ...

    @abstractmethod
    def ensure_auth_method(self, mount: str, method: str, *, create: bool, dry_run: bool) -> Change: ...

    @abstractmethod
    def ensure_kubernetes_role(self, spec: KubernetesRoleSpec, *, dry_run: bool) -> Change: ...

    @abstractmethod
    def ui_url(self, mount: str, path: str) -> str: ...

    @abstractmethod
    def ping(self) -> None:
        """Raise UpstreamUnavailable unless the server is reachable, unsealed and our token works."""
