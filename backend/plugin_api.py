"""What an action author imports: the Action declaration, its context, errors and provider ports.

Actions import this module (and marshmallow) only; import-linter enforces it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from marshmallow import Schema, ValidationError, fields, validate

from backend.catalog import entities as catalog_entities
from backend.errors import (
    ConflictError,
    FieldError,
    InputError,
    NotAllowedError,
    NotFoundError,
    PolicyViolation,
    RunFailedError,
    UpstreamError,
    UpstreamUnavailable,
)
from backend.guardrails import TenantSpec, object_name, render
from backend.kinds.base import ResourceKind
from backend.kube_settings import KubernetesSettings
from backend.naming import (
    DNS_LABEL,
    DNS_LABEL_MAX,
    ENTITY_REF,
    ENTITY_REF_MAX,
    LABEL_VALUE,
    LABEL_VALUE_MAX,
    SECRET_KEY,
    SECRET_KEY_MAX,
    Naming,
    entity_name,
    is_dns_label,
)
from backend.ownership import canonical_ref, same_owner
from backend.policy import Policy
from backend.providers.changes import Change, Outcome
from backend.providers.clusters import ClusterTarget, TenantResult
from backend.providers.manifests import validate as validate_manifests
from backend.providers.manifests import yaml_documents
from backend.providers.repositories import Protection, RepositoryHost, RepositoryResult, RepositorySpec
from backend.providers.secrets import InitialValues, KubernetesRoleSpec, SecretPathSpec, SecretsStore
from backend.redaction import Redactor
from backend.skeletons import Skeleton, load_skeleton, render_skeleton
from backend.store.claims import Claim
from backend.store.clock import utc_now
from backend.store.inventory import ResourceRecord
from backend.validators import CREDENTIAL_RULE, FreeText, FullMatch, field_messages, is_credential_message

__all__ = [
    "DNS_LABEL",
    "ENTITY_REF",
    "LABEL_VALUE",
    "SECRET_KEY",
    "SERVICE_KIND",
    "Action",
    "ActionContext",
    "ActionInput",
    "Change",
    "Claim",
    "ClusterTarget",
    "ConflictError",
    "ConformanceView",
    "Example",
    "FieldError",
    "FreeText",
    "FullMatch",
    "InitialValues",
    "InputError",
    "InventoryView",
    "KubernetesRoleSpec",
    "KubernetesSettings",
    "NameClaims",
    "Naming",
    "NotAllowedError",
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
    "ResourceKind",
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
    "canonical_ref",
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
    "same_owner",
    "secret_key_name",
    "validate_manifests",
    "yaml_documents",
]

_log = logging.getLogger("goldenpath.run")

dns_label = FullMatch(
    DNS_LABEL, max_length=DNS_LABEL_MAX, error="must be a DNS label: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit, at most 63 characters")
entity_ref = FullMatch(ENTITY_REF, max_length=ENTITY_REF_MAX,
                       error="must be an entity ref such as group:default/team-a")
label_value = FullMatch(
    LABEL_VALUE, max_length=LABEL_VALUE_MAX, error="must be letters, digits, '-', '_' or '.', starting and "
    "ending with a letter or digit, at most 63 characters")
secret_key_name = FullMatch(
    SECRET_KEY, max_length=SECRET_KEY_MAX,
    error="must be a key name: letters, digits, '_', '.', '-', not starting with a digit")


class ActionInput(Schema):
    """Base of an action's (top-level) input schema: free text that looks like a credential is a 422 policy
    problem naming each field (rule `no-credentials`), so the caller learns it must not send it; every other
    problem stays a 400. Nested schemas stay plain `Schema`s, so the fields they report have their full path."""

    def handle_error(self, error: ValidationError, data: Any, *, many: bool, **kwargs: Any) -> None:
        found = [FieldError(path, message, CREDENTIAL_RULE) for path, message in field_messages(error.messages)
                 if is_credential_message(message)]
        if found:
            raise PolicyViolation.of(found)


class ServiceInput(ActionInput):
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
    # The input field naming the owner group: only its members (or admins) may run a writing action, and the
    # runner refuses anyone else before the action runs. A writing action with no owner field is admin-only.
    owner_field: str | None = "owner"
    service_field: str | None = "service"  # the input field naming the service whose names the run claims
    # Input fields only platform admins may set (to a truthy value): what they unlock reaches beyond anything
    # Golden Path can tell the owner holds, e.g. `adopt` on a repository it did not create. Refused by the runner
    # like a non-member, before anything is written.
    admin_fields: tuple[str, ...] = ()
    # Whether run() reads ctx.secrets (what Backstage passes beside the input): never stored, so a run of it whose
    # replica died cannot be finished by another replica, only by its caller's retry.
    uses_caller_secrets: bool = False

    @property
    def plugin_id(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split(":", 1)[1]


@dataclass(frozen=True)
class Requester:
    """Who a run acts as. `user` is a verified person, never a claim; `claimed_user` is what a caller with no
    person merely says (recorded as a claim, grants nothing). `groups` are the canonical group refs the person
    is a member of (or the credential's own groups); `admin` may act for every owner."""

    user: str | None
    caller: str
    claimed_user: str | None = None
    groups: frozenset[str] = frozenset()
    admin: bool = False

    @property
    def actor(self) -> str:
        """Who to name in provenance (commit messages, annotations): the person, else the credential."""
        return self.user or self.caller

    def may_act_for(self, owner: str) -> bool:
        """Whether this requester may create or change what `owner` owns: a member of the owner group, the
        owner itself, or an admin."""
        if self.admin:
            return True
        try:
            wanted = canonical_ref(owner)
        except ValueError:
            return False
        return wanted in self.groups or (self.user is not None and wanted == canonical_ref(self.user))


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


class ConformanceView(Protocol):
    """Checks a service's resources against what Golden Path made (backend.services.conformance)."""

    def check(self, service: str, *, caller: str) -> dict[str, Any]: ...


class NameClaims(Protocol):
    """The names runs hold (see backend.store.claims): a name derived for one subject and owner is never
    given to another."""

    def conflicts(self, claims: Iterable[Claim]) -> list[ConflictError]: ...

    def hold(self, claims: Iterable[Claim], *, run_id: str) -> None: ...

    def held_by(self, claim: Claim) -> str | None: ...


SERVICE_KIND = "service"  # the inventory kind of a catalog registration


def claim_service(inventory: InventoryView, service: str, owner: str) -> tuple[dict[str, Any] | None,
                                                                                list[dict[str, Any]]]:
    """The service's registration (None: not registered) and what was made for it, when all of it is `owner`'s;
    a ConflictError naming the owner otherwise."""
    existing = inventory.find(SERVICE_KIND, service)
    if existing is not None and not same_owner(existing["owner"], owner):
        raise ConflictError(f"service {service} is registered to {existing['owner']}", owner=existing["owner"])
    made = [row for row in inventory.list(service=service) if row["kind"] != SERVICE_KIND]
    foreign = sorted({row["owner"] for row in made if row["owner"] and not same_owner(row["owner"], owner)})
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
    claims: NameClaims | None = None
    conformance: ConformanceView | None = None
    public_url: str = ""

    @contextmanager
    def batched_reads(self) -> Iterator[None]:
        """Within it, this thread reads every cluster in bulk (a conformance pass)."""
        with ExitStack() as stack:
            for cluster in self.clusters.values():
                stack.enter_context(cluster.batched_reads())
            yield

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

    def info(self, message: str, /, **fields: Any) -> None:
        self._emit("info", message, fields)

    def warning(self, message: str, /, **fields: Any) -> None:
        self._emit("warning", message, fields)

    def _emit(self, level: str, message: str, fields: dict[str, Any]) -> None:
        safe_message = self._redactor.text(message)
        safe_fields = self._redactor.data(fields)
        self.lines.append({"at": utc_now(), "level": level, "message": safe_message, "fields": safe_fields})
        # the fields go under one key: spread into `extra`, a field named like a LogRecord attribute ("name",
        # "message", "args") would make logging raise and fail the run
        _log.log(logging.getLevelName(level.upper()), safe_message,
                 extra={"run_id": self._run_id, "fields": safe_fields})


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
    owner: str | None = None  # the owner the runner authorized (canonical), for actions with an owner field
    service: str | None = None  # the service the run is for, whose name it holds once the policy checks pass
    changes: list[Change] = field(default_factory=list)
    resources: list[ResourceRecord] = field(default_factory=list)
    # each change with the resource it was recorded with (None: it belongs to the resource recorded before it)
    observed: list[tuple[Change, ResourceRecord | None]] = field(default_factory=list)

    @property
    def naming(self) -> Naming:
        return self.policy.naming

    def claim(self, kind: str, name: str, *, subject: str) -> None:
        """Hold `name` for this run's owner and `subject` before writing anything under it: the same name for
        another subject or owner is a ConflictError. A dry-run only checks."""
        self.claim_all([Claim(kind, name, self._claim_owner(), subject)])

    def claim_all(self, claims: Iterable[Claim]) -> None:
        """Hold the service's name and every one of `claims`, or none of them: all are checked first, so a clash
        on one leaves the others free (a dry-run only checks). Call it after the policy checks, so a request the
        rules refuse holds no name."""
        wanted = [*self.service_claims(), *claims]
        if self.providers.claims is None or not wanted:
            return
        if found := self.providers.claims.conflicts(wanted):
            raise found[0]
        if not self.dry_run:
            self.providers.claims.hold(wanted, run_id=self.run_id)

    def service_claims(self) -> list[Claim]:
        """The service's own name, when this run has a service and an owner (the runner sets both)."""
        if self.service is None or self.owner is None:
            return []
        return [Claim(SERVICE_KIND, self.service, self.owner, self.service)]

    def claim_problems(self, claims: Iterable[Claim], *, field: str) -> list[FieldError]:
        """Read only, for the plan: each clash as a problem on `field`."""
        if self.providers.claims is None:
            return []
        return [FieldError(field, clash.detail, "name-available") for clash in self.providers.claims.conflicts(claims)]

    def claim_for(self, kind: str, name: str, *, subject: str) -> Claim:
        return Claim(kind, name, self._claim_owner(), subject)

    def held_before(self, kind: str, name: str, *, subject: str) -> bool:
        """Whether an earlier run already held `name` for this owner and subject, so what it began there is this
        owner's to finish; a name no run held before this one names nothing Golden Path made."""
        if self.providers.claims is None:
            return True
        holder = self.providers.claims.held_by(self.claim_for(kind, name, subject=subject))
        return holder is not None and holder != self.run_id

    def environment_claims(self, env: str, *, namespace: str | None = None) -> list[Claim]:
        """Every name the golden path derives for the service in one environment: its secrets path, both Vault
        policies, the Kubernetes auth role and the namespace (a service's in any environment)."""
        service, system = self.input["service"], self.input["system"]
        names = {"service": service, "system": system, "environment": env}
        subject = f"{service}/{env}"
        claims = [self.claim_for("kubernetes.namespace", namespace or self.naming.namespace(**names),
                                 subject=service)]
        if self.providers.vault is not None:
            vault = self.providers.vault
            claims += [
                self.claim_for("vault.secrets-path", f"{vault.kv_mount}/{self.naming.secrets_path(**names)}",
                               subject=subject),
                self.claim_for("vault.policy", self.naming.vault_policy(**names, audience="workload"),
                               subject=subject),
                self.claim_for("vault.policy", self.naming.vault_policy(**names, audience="owners"),
                               subject=subject),
            ]
            if vault.kubernetes_auth_mount:
                claims.append(self.claim_for("vault.kubernetes-role", f"{vault.kubernetes_auth_mount}/"
                                             f"{self.naming.vault_role(**names)}", subject=subject))
        return claims

    def _claim_owner(self) -> str:
        if self.owner is None:
            raise RunFailedError("this action has no owner to claim names for")
        return self.owner

    def check_service_policy(self, extra: Iterable[FieldError] = (), *, claims: Iterable[Claim] = ()) -> None:
        """The platform's rules for the ServiceInput fields (naming, environments, cost center, owner) and the
        action's `extra` problems: one PolicyViolation naming every problem, before anything is written. Then
        the service's name and the action's `claims` are held, all or none (see claim_all)."""
        self.policy.enforce([*self.policy.request_problems(self.input), *extra])
        self.claim_all(claims)

    def add_resource(self, resource: ResourceRecord) -> None:
        """Put a resource in the inventory when the run succeeds (not in a dry-run)."""
        self.resources.append(resource)

    def record(self, change: Change, resource: ResourceRecord | None = None) -> Change:
        """Note what an ensure_* call did; the runner stores it, audits it and updates the inventory."""
        self.changes.append(change)
        self.observed.append((change, resource))
        verb = f"would be {change.outcome.value}" if self.dry_run and change.is_write else change.outcome.value
        self.log.info(f"{change.kind} {change.locator}: {verb}", fields=list(change.fields))
        if resource is not None:
            self.resources.append(resource)
        return change
