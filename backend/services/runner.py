"""The run engine: validate → idempotency → run or dry-run → record → audit.

One path for every caller (REST API, Backstage distributed actions, CLI), so each gets the
same validation, idempotency, redaction and audit trail.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from marshmallow import Schema, ValidationError

from backend.errors import (
    ConflictError,
    FieldError,
    GoldenPathError,
    InputError,
    NotAllowedError,
    RunFailedError,
    UpstreamError,
)
from backend.naming import Naming
from backend.ownership import canonical_ref
from backend.plugin_api import Action, ActionContext, Policy, Providers, Requester, RunLogger
from backend.redaction import MASK, Redactor
from backend.services.metrics import Metrics
from backend.services.registry import ActionRegistry
from backend.settings import Settings
from backend.store.audit import AuditStore, NewAuditEvent
from backend.store.database import Database
from backend.store.inventory import InventoryStore
from backend.store.runs import DuplicateKeyError, NewRun, RunStore

_log = logging.getLogger("goldenpath.runner")
REPLAY_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class RunRequest:
    action_id: str
    input: Mapping[str, Any]
    requester: Requester
    dry_run: bool = False
    idempotency_key: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Stores:
    database: Database
    runs: RunStore
    audit: AuditStore
    inventory: InventoryStore


class Runner:
    def __init__(
        self, *, registry: ActionRegistry, stores: Stores, providers: Providers, settings: Settings,
        redactor: Redactor, metrics: Metrics, on_inventory_change: Callable[[], object] | None = None,
    ) -> None:
        self._registry, self._stores, self._providers = registry, stores, providers
        self._on_inventory_change = on_inventory_change
        self._policy = policy_from(settings)
        self._redactor, self._metrics = redactor, metrics

    def run(self, request: RunRequest) -> dict[str, Any]:
        action = self._registry.get(request.action_id)
        if request.dry_run and not action.supports_dry_run:
            raise InputError.for_field("dryRun", f"{action.id} does not support dry-run")
        data = canonical_owner(action, load_input(action.input_schema, request.input))
        secret_values = [*secret_inputs(action.input_schema, data), *request.secrets.values()]
        redactor = self._redactor.child(secret_values)
        digest = input_digest(action.input_schema, data, dry_run=request.dry_run)
        new = NewRun(
            id=str(uuid.uuid4()), action_id=action.id, dry_run=request.dry_run,
            input=redactor.data(mask_secrets(action.input_schema, data)), input_digest=digest,
            idempotency_key=request.idempotency_key, requested_by=request.requester.user,
            caller=request.requester.caller, context=redactor.data(dict(request.context)),
        )
        refusal = authorization_problem(action, data, request.requester)
        if refusal is not None:
            self._refuse(action, new, request.requester, refusal)
        if request.idempotency_key:
            replay = self._claim_or_replay(new)
            if replay is not None:
                self._metrics.replays.labels(action.id).inc()
                return replay
        else:
            self._stores.runs.create(new)
        return self._execute(action, new, data, request, redactor)

    def _claim_or_replay(self, new: NewRun) -> dict[str, Any] | None:
        key = str(new.idempotency_key)
        existing = self._stores.runs.find_by_key(new.action_id, key)
        if existing is None:
            try:
                self._stores.runs.create(new)
                return None
            except DuplicateKeyError:
                existing = self._stores.runs.find_by_key(new.action_id, key)
        if existing is None:  # the holder failed and released the key in between: claim it now
            return self._claim_or_replay(new)
        # a key is its requester's: another person or credential replays nothing (not even a plan's answer, which
        # needs no membership) and learns nothing about the run that holds it
        if (existing["requestedBy"], existing["caller"]) != (new.requested_by, new.caller):
            raise ConflictError(f"idempotency key {key!r} is already used by another requester")
        if existing["inputDigest"] != new.input_digest:
            raise ConflictError(f"idempotency key {key!r} was already used with a different input")
        finished = self._wait_for(existing)
        if finished["status"] != "succeeded":
            raise _error_from_record(finished)
        return {**finished, "replayed": True}

    def _wait_for(self, record: dict[str, Any]) -> dict[str, Any]:
        deadline, delay = time.monotonic() + REPLAY_WAIT_SECONDS, 0.01
        while record["status"] == "running":
            if time.monotonic() > deadline:
                raise ConflictError(f"run {record['id']} with this idempotency key is still in progress")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
            record = self._stores.runs.get(record["id"]) or record
        return record

    def _refuse(self, action: Action, new: NewRun, requester: Requester, error: NotAllowedError) -> None:
        """A refused run writes nothing but its own record and the audit event that shows who was refused."""
        self._stores.runs.create(replace(new, idempotency_key=None))
        with self._stores.database.transaction() as session:
            self._stores.runs.finish(new.id, status="refused", output=None, error=error.to_problem(), changes=[],
                                     logs=[], session=session)
            self._stores.audit.append(NewAuditEvent(
                actor_user=new.requested_by, actor_caller=new.caller, claimed_user=requester.claimed_user,
                action_id=action.id, run_id=new.id, input_digest=new.input_digest, result="refused",
                detail=error.detail), session=session)
        self._metrics.runs.labels(action.id, "refused", str(new.dry_run).lower()).inc()
        error.run_id = new.id
        raise error

    def _execute(
        self, action: Action, new: NewRun, data: dict[str, Any], request: RunRequest, redactor: Redactor
    ) -> dict[str, Any]:
        owner = data.get(action.owner_field) if action.owner_field else None
        service = data.get(action.service_field) if action.service_field else None
        ctx = ActionContext(
            input=data, dry_run=request.dry_run, run_id=new.id, requester=request.requester,
            log=RunLogger(redactor, new.id), providers=self._providers, policy=self._policy,
            secrets=dict(request.secrets), template_ref=request.context.get("templateRef"),
            owner=owner if isinstance(owner, str) else None,
            service=service if isinstance(service, str) and not action.read_only else None,
        )
        started = time.perf_counter()
        error: GoldenPathError | None = None
        output: dict[str, Any] | None = None
        try:
            # another owner's service is a 409 before the action runs (out-of-tree actions too); the name is held
            # once the action's own policy checks pass (ActionContext.claim_all)
            if self._providers.claims is not None and (found := self._providers.claims.conflicts(ctx.service_claims())):
                raise found[0]
            output = action.run(ctx)
            check_output(action, output)
        except GoldenPathError as exc:
            exc.redact(redactor.text)  # the caller sees the detail and the errors: mask secrets first
            error = exc
        except Exception as exc:
            trace = "".join(traceback.format_exception(exc))  # with the traceback, masked like everything logged
            _log.error("action %s failed: %s", action.id, redactor.text(trace), extra={"run_id": new.id})
            error = RunFailedError(f"{action.id} failed unexpectedly; see the server log for run {new.id}")
        record = self._record(action, new, ctx, output=output, error=error, redactor=redactor,
                              seconds=time.perf_counter() - started)
        if error is not None:
            error.run_id = new.id
            raise error
        return {**record, "replayed": False, "resources": [vars(r) for r in ctx.resources]}

    def _record(
        self, action: Action, new: NewRun, ctx: ActionContext, *, output: dict[str, Any] | None,
        error: GoldenPathError | None, redactor: Redactor, seconds: float,
    ) -> dict[str, Any]:
        status = "failed" if error else "succeeded"
        changes = [change.to_dict() for change in ctx.changes]
        problem = redactor.data(error.to_problem()) if error else None
        # The run record, the inventory and the audit event commit together: no evidence without its run.
        inventory_changed = False
        with self._stores.database.transaction() as session:
            record = self._stores.runs.finish(
                new.id, status=status, output=redactor.data(output) if output is not None else None,
                error=problem, changes=changes, logs=ctx.log.lines, session=session,
            )
            if not new.dry_run and error is None:
                inventory_changed = self._stores.inventory.upsert(ctx.resources, action_id=action.id, run_id=new.id,
                                                                  session=session)
            if not new.dry_run:
                self._stores.audit.append(NewAuditEvent(
                    actor_user=new.requested_by, actor_caller=new.caller,
                    claimed_user=ctx.requester.claimed_user, action_id=action.id, run_id=new.id,
                    input_digest=new.input_digest, result=status,
                    changes=[c for c in changes if c["outcome"] != "unchanged"],
                    detail=problem["detail"] if problem else None,
                ), session=session)
        if inventory_changed and self._on_inventory_change is not None:
            self._on_inventory_change()
        self._metrics.runs.labels(action.id, status, str(new.dry_run).lower()).inc()
        self._metrics.run_seconds.labels(action.id).observe(seconds)
        if isinstance(error, UpstreamError):
            self._metrics.upstream_errors.labels(error.provider, str(error.is_retryable).lower()).inc()
        return record


def canonical_owner(action: Action, data: dict[str, Any]) -> dict[str, Any]:
    """Owners are compared as full entity refs: `team-a` and `group:default/team-a` are one owner."""
    owner = data.get(action.owner_field) if action.owner_field else None
    if isinstance(owner, str):
        try:
            return {**data, str(action.owner_field): canonical_ref(owner)}
        except ValueError:
            raise InputError.for_field(str(action.owner_field), "must be an entity ref") from None
    return data


def authorization_problem(action: Action, data: Mapping[str, Any], requester: Requester) -> NotAllowedError | None:
    """Only members of the owner group (or admins) may run a writing action for it, dry-runs included (they
    read the owner's state). The read-only plan reports the same rule among its problems instead."""
    if action.read_only:
        return None
    owner = data.get(action.owner_field) if action.owner_field else None
    who = requester.user or f"the credential {requester.caller}"
    if not requester.admin and (admin_set := [name for name in action.admin_fields if data.get(name)]):
        return NotAllowedError(f"{who} may not set {admin_set[0]}: only platform admins may", rule="admin-only",
                               field=admin_set[0])
    if not isinstance(owner, str):
        if requester.admin:
            return None
        return NotAllowedError(f"{who} may not run {action.id}: it names no owner, so only platform admins may",
                               rule="admin-only")
    if requester.may_act_for(owner):
        return None
    return NotAllowedError(f"{who} is not a member of {owner}, so may not act for it (not-a-member-of-owner)",
                           rule="not-a-member-of-owner", field=str(action.owner_field))


def policy_from(settings: Settings) -> Policy:
    rules = settings.policy
    return Policy(
        environments=rules.environments, tiers=tuple(settings.kubernetes.tiers),
        naming=Naming(rules.namespace_pattern, rules.service_account_pattern), service_pattern=rules.service_pattern,
        reserved_names=rules.reserved_names, cost_center_pattern=rules.cost_center_pattern,
        visibilities=rules.visibilities, clusters=settings.kubernetes.environments,
        reserved_namespaces=rules.reserved_namespaces, allow_workload_overrides=rules.allow_workload_overrides,
        owner_namespaces=rules.owner_namespaces,
    )


def load_input(schema: type[Schema], raw: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise InputError.for_field("input", "must be a JSON object")
    try:
        loaded: dict[str, Any] = schema().load(raw)
    except ValidationError as exc:
        errors = list(field_errors(exc.messages))
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        raise InputError(f"invalid input: {summary}", errors) from None
    return loaded


def field_errors(messages: Any, prefix: str = "") -> list[FieldError]:
    if isinstance(messages, dict):
        out: list[FieldError] = []
        for key, value in messages.items():
            name = "input" if key == "_schema" and not prefix else f"{prefix}{key}"
            out.extend(field_errors(value, f"{name}."))
        return out
    path = prefix.rstrip(".") or "input"
    items = messages if isinstance(messages, list) else [messages]
    return [FieldError(path, _plain(str(m))) for m in items]


_PLAIN_MESSAGES = {"Unknown field.": "is not a known field", "Missing data for required field.": "is required",
                   "Field may not be null.": "may not be null"}


def _plain(message: str) -> str:
    return _PLAIN_MESSAGES.get(message, message)


def secret_fields(schema: type[Schema]) -> list[str]:
    return [name for name, f in schema().fields.items() if f.metadata.get("secret")]


def secret_inputs(schema: type[Schema], data: Mapping[str, Any]) -> list[str]:
    return [str(data[name]) for name in secret_fields(schema) if data.get(name)]


def mask_secrets(schema: type[Schema], data: Mapping[str, Any]) -> dict[str, Any]:
    hidden = set(secret_fields(schema))
    return {key: (MASK if key in hidden else value) for key, value in data.items()}


def input_digest(schema: type[Schema], data: Mapping[str, Any], *, dry_run: bool) -> str:
    hidden = set(secret_fields(schema))
    visible = {k: v for k, v in data.items() if k not in hidden}
    canonical = json.dumps({"input": visible, "dryRun": dry_run}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_output(action: Action, output: Any) -> None:
    problems = action.output_schema().validate(output) if isinstance(output, dict) else {"_schema": ["not a dict"]}
    if problems:
        raise RunFailedError(f"{action.id} returned output that breaks its own schema: {sorted(problems)}")


def _error_from_record(record: dict[str, Any]) -> GoldenPathError:
    problem = record.get("error") or {}
    error = RunFailedError(f"the run with this idempotency key failed: {problem.get('detail', 'unknown error')}")
    error.run_id = record["id"]
    return error
