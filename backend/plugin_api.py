"""What an action author imports: the Action declaration, its context, errors and provider ports.

Actions import this module (and marshmallow) only; import-linter enforces it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from marshmallow import Schema, fields, validate

from backend.catalog import entities as catalog_entities
from backend.errors import (
    ConflictError,
    FieldError,
    InputError,
    NotFoundError,
    PolicyViolation,
    UpstreamError,
    UpstreamUnavailable,
)
from backend.guardrails import TenantSpec, object_name, render
from backend.kube_settings import KubernetesSettings
from backend.naming import DNS_LABEL, ENTITY_REF, LABEL_VALUE, SECRET_KEY, Naming, entity_name, is_dns_label
from backend.policy import Policy
from backend.providers.changes import Change, Outcome
from backend.providers.clusters import ClusterTarget, TenantResult
from backend.providers.manifests import validate as validate_manifests
from backend.providers.manifests import yaml_documents
from backend.providers.repositories import Protection, RepositoryHost, RepositoryResult, RepositorySpec
from backend.providers.secrets import InitialValues, KubernetesRoleSpec, SecretPathSpec, SecretsStore
from backend.redaction import Redactor
from backend.skeletons import Skeleton, load_skeleton, render_skeleton
from backend.store.clock import utc_now
from backend.store.inventory import ResourceRecord

__all__ = [
    "DNS_LABEL",
    "ENTITY_REF",
    "LABEL_VALUE",
    "SECRET_KEY",
    "SERVICE_KIND",
    "Action",
    "ActionContext",
    "Change",
    "ClusterTarget",
    "ConflictError",
    "Example",
    "FieldError",
    "InitialValues",
    "InputError",
    "InventoryView",
    "KubernetesRoleSpec",
    "KubernetesSettings",
    "Naming",
    "NotFoundError",
    "Outcome",
    "Policy",
    "PolicyViolation",
    "Protection",
    "Providers",
    "RepositoryHost",
    "RepositoryResult",
    "RepositorySpec",
    "Requester",
    "ResourceRecord",
    "RunLogger",
    "SecretPathSpec",
    "SecretsStore",
    "ServiceInput",
    "Skeleton",
    "TenantResult",
    "TenantSpec",
    "UpstreamError",
    "UpstreamUnavailable",
    "VaultOptions",
    "catalog_entities",
    "claim_service",
    "dns_label",
    "entity_name",
    "entity_ref",
    "is_dns_label",
    "label_value",
    "load_skeleton",
    "object_name",
    "render",
    "render_skeleton",
    "secret_key_name",
    "validate_manifests",
    "yaml_documents",
]

_log = logging.getLogger("goldenpath.run")

dns_label = validate.Regexp(
    DNS_LABEL, error="must be a DNS label: lowercase letters, digits and '-', starting and ending "
    "with a letter or digit, at most 63 characters")
entity_ref = validate.Regexp(ENTITY_REF, error="must be an entity ref such as group:default/team-a")
label_value = validate.Regexp(
    LABEL_VALUE, error="must be letters, digits, '-', '_' or '.', starting and ending with a letter "
    "or digit, at most 63 characters")
secret_key_name = validate.Regexp(
    SECRET_KEY, error="must be a key name: letters, digits, '_', '.', '-', not starting with a digit")


class ServiceInput(Schema):
    """The fields every golden-path action takes about the service; actions extend it with their own."""

    service = fields.String(required=True, validate=dns_label, metadata={
        "title": "Service", "description": "Service name, a DNS label (lowercase letters, digits, '-')."})
    system = fields.String(required=True, validate=dns_label, metadata={
        "title": "System", "description": "The system the service belongs to, a DNS label."})
    owner = fields.String(required=True, validate=entity_ref, metadata={
        "title": "Owner", "description": "Owning group, as an entity ref (group:default/team-a)."})
    costCenter = fields.String(required=True, validate=label_value, metadata={
        "title": "Cost center", "description": "Cost center for chargeback."})
    environments = fields.List(fields.String(validate=dns_label), required=True,
                               validate=validate.Length(min=1, max=10), metadata={
        "title": "Environments", "description": "Environments to provision, e.g. [dev, prod]."})


@dataclass(frozen=True)
class Example:
    description: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Action:
    """A scaffolder action: declared once, published to Backstage and to the REST API."""

    id: str
    title: str
    description: str
    input_schema: type[Schema]
    output_schema: type[Schema]
    run: Callable[[ActionContext], dict[str, Any]]
    examples: tuple[Example, ...] = ()
    read_only: bool = False
    idempotent: bool = True
    destructive: bool = False
    supports_dry_run: bool = True

    @property
    def plugin_id(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split(":", 1)[1]


@dataclass(frozen=True)
class Requester:
    user: str | None
    caller: str


@dataclass(frozen=True)
class VaultOptions:
    kv_mount: str
    create_kv_mount: bool
    max_versions: int
    kubernetes_auth_mount: str | None
    enable_kubernetes_auth: bool
    role_token_ttl: str


class InventoryView(Protocol):
    """Read access to what Golden Path provisioned (the runs' inventory)."""

    def find(self, kind: str, locator: str) -> dict[str, Any] | None: ...

    def list(self, *, service: str | None = None, kind: str | None = None) -> list[dict[str, Any]]: ...


SERVICE_KIND = "service"  # the inventory kind of a catalog registration


def claim_service(inventory: InventoryView, service: str, owner: str) -> tuple[dict[str, Any] | None,
                                                                                list[dict[str, Any]]]:
    """The service's registration (None: not registered) and what was made for it, when all of it is `owner`'s;
    a ConflictError naming the owner otherwise."""
    existing = inventory.find(SERVICE_KIND, service)
    if existing is not None and existing["owner"] != owner:
        raise ConflictError(f"service {service} is registered to {existing['owner']}", owner=existing["owner"])
    made = [row for row in inventory.list(service=service) if row["kind"] != SERVICE_KIND]
    foreign = sorted({row["owner"] for row in made if row["owner"] and row["owner"] != owner})
    if foreign:
        raise ConflictError(f"resources of service {service} belong to {', '.join(foreign)}", owner=foreign[0])
    return existing, made


@dataclass
class Providers:
    """Provider ports an action may use; None where not configured."""

    secrets: SecretsStore | None = None
    vault: VaultOptions | None = None
    clusters: dict[str, ClusterTarget] = field(default_factory=dict)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    repositories: RepositoryHost | None = None
    repository_org: str = "goldenpath"
    skeletons_dir: str = ""
    default_skeleton: str = "golden-path-service"
    inventory: InventoryView | None = None
    public_url: str = ""

    def require_secrets(self) -> tuple[SecretsStore, VaultOptions]:
        if self.secrets is None or self.vault is None:
            raise UpstreamUnavailable("no Vault is configured for this Golden Path", provider="vault")
        return self.secrets, self.vault


class RunLogger:
    """Collects a run's log lines (stored with the run, shown to Backstage), secrets masked."""

    def __init__(self, redactor: Redactor, run_id: str) -> None:
        self._redactor = redactor
        self._run_id = run_id
        self.lines: list[dict[str, Any]] = []

    def info(self, message: str, **fields: Any) -> None:
        self._emit("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._emit("warning", message, fields)

    def _emit(self, level: str, message: str, fields: dict[str, Any]) -> None:
        safe_message = self._redactor.text(message)
        safe_fields = self._redactor.data(fields)
        self.lines.append({"at": utc_now(), "level": level, "message": safe_message, "fields": safe_fields})
        _log.log(logging.getLevelName(level.upper()), safe_message, extra={"run_id": self._run_id, **safe_fields})


@dataclass
class ActionContext:
    input: dict[str, Any]
    dry_run: bool
    run_id: str
    requester: Requester
    log: RunLogger
    providers: Providers
    policy: Policy
    secrets: Mapping[str, str] = field(default_factory=dict)
    template_ref: str | None = None
    changes: list[Change] = field(default_factory=list)
    resources: list[ResourceRecord] = field(default_factory=list)

    @property
    def naming(self) -> Naming:
        return self.policy.naming

    def check_service_policy(self, extra: Iterable[FieldError] = ()) -> None:
        """The platform's rules for the ServiceInput fields (naming, environments, cost center) and the
        action's `extra` problems: one PolicyViolation naming every problem, before anything is written."""
        self.policy.enforce([*self.policy.request_problems(self.input), *extra])

    def add_resource(self, resource: ResourceRecord) -> None:
        """Put a resource in the inventory when the run succeeds (not in a dry-run)."""
        self.resources.append(resource)

    def record(self, change: Change, resource: ResourceRecord | None = None) -> Change:
        """Note what an ensure_* call did; the runner stores it, audits it and updates the inventory."""
        self.changes.append(change)
        verb = f"would be {change.outcome.value}" if self.dry_run and change.is_write else change.outcome.value
        self.log.info(f"{change.kind} {change.locator}: {verb}", fields=list(change.fields))
        if resource is not None:
            self.resources.append(resource)
        return change
