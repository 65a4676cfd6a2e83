"""The run engine: validate → authorize → idempotency → lease → lock → run or dry-run → record → audit.

One path for every caller (REST API, Backstage distributed actions, CLI), so each gets the
same validation, idempotency, redaction and audit trail.

Runs survive their replica: an accepted run holds a lease its replica renews; each backend write is written
ahead as an intent; writing runs of one service hold a lock shared by every replica. A run whose lease lapsed is
taken over, as its next attempt, by the retry that carries its idempotency key or by any replica's sweep
(`take_over_lapsed`); the attempt converges (every action is idempotent) and resolves the earlier attempts'
intents by what it reads back, so the audit names every object created, by the run that created it.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from backend.crashpoints import crashpoint
from backend.errors import (
    BusyError,
    ConflictError,
    GoldenPathError,
    InputError,
    InterruptedRunError,
    NotAllowedError,
    RunFailedError,
    UpstreamError,
)
from backend.naming import Naming
from backend.plugin_api import Action, ActionContext, Policy, Providers, Requester, RunLogger
from backend.providers.changes import Change
from backend.providers.journal import journaling
from backend.redaction import Redactor
from backend.services.leases import LeaseKeeper
from backend.services.metrics import Metrics
from backend.services.registry import ActionRegistry
from backend.services.run_evidence import canonical_bytes, requester_record, resolve_intents
from backend.services.run_input import (
    canonical_owner,
    check_output,
    input_digest,
    load_input,
    mask_secrets,
    secret_inputs,
)
from backend.settings import RunSettings, Settings
from backend.store.audit import AuditStore, NewAuditEvent
from backend.store.clock import utc_now
from backend.store.database import Database
from backend.store.inventory import InventoryStore
from backend.store.locks import Locks, LockTimeout
from backend.store.runs import (
    DuplicateKeyError,
    Lease,
    LeaseLost,
    NewRun,
    RunStore,
    intent_envelope,
    takeover_envelope,
)

_log = logging.getLogger("goldenpath.runner")
REPLAY_WAIT_SECONDS = 120.0
TAKEOVER_CALLER = "goldenpath:takeover"
MAX_ATTEMPTS = 3  # a run whose replica stopped this many times (a poison run) is closed, not passed on for ever
_UNSEALED = "its record carries no valid seal"


@dataclass(frozen=True)
class RunRequest:
    action_id: str
    input: Mapping[str, Any]
    requester: Requester
    dry_run: bool = False
    idempotency_key: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    # asked under the service's lock, just before a writing run's action: why it may no longer run (a repair whose
    # resources a newer run made since the check), or None
    precondition: Callable[[], str | None] | None = None


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
        self._options: RunSettings = settings.runs
        self._leases = LeaseKeeper(stores.runs, seconds=settings.runs.lease_seconds)
        self._locks = Locks(stores.database.engine)

    @property
    def holder(self) -> str:
        """This replica, as named in the leases it holds."""
        return self._leases.holder

    @property
    def leases(self) -> LeaseKeeper:
        return self._leases

    def run(self, request: RunRequest) -> dict[str, Any]:
        action = self._registry.get(request.action_id)
        if request.dry_run and not action.supports_dry_run:
            raise InputError.for_field("dryRun", f"{action.id} does not support dry-run")
        data = canonical_owner(action, load_input(action.input_schema, request.input))
        secret_values = [*secret_inputs(action.input_schema, data), *request.secrets.values()]
        redactor = self._redactor.child(secret_values)
        digest = input_digest(action.input_schema, data, dry_run=request.dry_run)
        new = self._sealed(NewRun(
            id=str(uuid.uuid4()), action_id=action.id, dry_run=request.dry_run,
            input=redactor.data(mask_secrets(action.input_schema, data)), input_digest=digest,
            idempotency_key=request.idempotency_key, requested_by=request.requester.user,
            caller=request.requester.caller, context=redactor.data(dict(request.context)),
            requester=requester_record(request.requester, needs_caller=bool(
                secret_inputs(action.input_schema, data)) or (action.uses_caller_secrets and bool(request.secrets))),
        ))
        refusal = authorization_problem(action, data, request.requester)
        if refusal is not None:
            self._refuse(action, new, request.requester, refusal)
        if request.idempotency_key:
            claimed = self._claim_or_replay(new)
            if not isinstance(claimed, Lease):
                self._metrics.replays.labels(action.id).inc()
                return claimed
            lease = claimed
        else:
            self._create(new)
            lease = Lease(new.id, self.holder, 1)
        return self._execute(action, replace(new, id=lease.run_id), data, request, redactor, lease=lease)

    def _create(self, new: NewRun) -> None:
        self._stores.runs.create(new, holder=self.holder, lease_seconds=self._options.lease_seconds)

    def _sealed(self, new: NewRun) -> NewRun:
        """Seal what a take-over may run again with the audit key (kept outside the database)."""
        key = self._stores.audit.key
        envelope = takeover_envelope({"id": new.id, "actionId": new.action_id, "dryRun": new.dry_run,
                                      "inputDigest": new.input_digest, "input": new.input,
                                      "requester": new.requester, "context": new.context,
                                      "requestedBy": new.requested_by, "caller": new.caller})
        return replace(new, seal=key.mac(canonical_bytes(envelope)), seal_key_id=key.key_id)

    def _claim_or_replay(self, new: NewRun) -> dict[str, Any] | Lease:
        """A Lease to run under (a new run, or one whose replica died), or the finished run's answer to replay."""
        key = str(new.idempotency_key)
        existing = self._stores.runs.find_by_key(new.action_id, key)
        if existing is None:
            try:
                self._create(new)
                return Lease(new.id, self.holder, 1)
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
        if isinstance(finished, Lease):
            return finished
        if finished["status"] != "succeeded":  # it failed while this retry waited, and released the key: run it
            return self._claim_or_replay(new)
        return {**finished, "replayed": True}

    def _wait_for(self, record: dict[str, Any]) -> dict[str, Any] | Lease:
        """The run once finished; or, when its replica stopped renewing its lease, the lease to finish it under
        (this request is the same requester's with the same input, so it may)."""
        deadline, delay = time.monotonic() + REPLAY_WAIT_SECONDS, 0.01
        while record["status"] == "running":
            lease = self._stores.runs.take_over(record["id"], holder=self.holder,
                                                seconds=self._options.lease_seconds)
            if lease is not None:
                _log.warning("run %s: its replica stopped renewing its lease; this retry takes it over as attempt %d",
                             record["id"], lease.attempt, extra={"run_id": record["id"]})
                return lease
            if time.monotonic() > deadline:
                raise BusyError(f"run {record['id']} with this idempotency key is still in progress")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
            record = self._stores.runs.get(record["id"]) or record
        return record

    def take_over_lapsed(self, *, limit: int = 20) -> int:
        """Finish every run whose replica stopped renewing its lease (one replica wins each); returns how many
        this replica took over. Each is run again from its sealed record, or, when it needs what only its caller
        had (a secret input), closed as interrupted with what its intents tell."""
        taken = 0
        for row in self._stores.runs.lapsed(limit=limit):
            lease = self._stores.runs.take_over(row["id"], holder=self.holder, seconds=self._options.lease_seconds)
            if lease is None:
                continue
            taken += 1
            try:
                self._resume(row, lease)
            except GoldenPathError:
                pass  # recorded with the run
            except Exception:
                _log.exception("taking over run %s failed", row["id"], extra={"run_id": row["id"]})
        return taken

    def _resume(self, row: dict[str, Any], lease: Lease) -> None:
        _log.warning("run %s: its replica stopped renewing its lease; taking it over as attempt %d",
                     row["id"], lease.attempt, extra={"run_id": row["id"]})
        requester = row.get("requester") or {}
        if (refusal := self._not_to_resume(row, lease)) is not None:
            self._interrupt(row, lease, refusal, verified=not refusal.startswith(_UNSEALED))
            return
        try:
            action = self._registry.get(row["actionId"])
            data = canonical_owner(action, load_input(action.input_schema, row["input"]))
        except GoldenPathError as exc:
            self._interrupt(row, lease, f"it cannot be run again: {exc.detail}")
            return
        if input_digest(action.input_schema, data, dry_run=row["dryRun"]) != row["inputDigest"]:
            self._interrupt(row, lease, "its stored input no longer matches its digest: not run again")
            return
        who = recorded_requester(row)
        if (denied := authorization_problem(action, data, who)) is not None:
            self._interrupt(row, lease, f"its requester may not run it ({denied.detail}): not run again")
            return
        request = RunRequest(action_id=action.id, input=data, requester=who, dry_run=row["dryRun"],
                             idempotency_key=row["idempotencyKey"], context=row["context"] or {})
        new = NewRun(id=row["id"], action_id=action.id, dry_run=row["dryRun"], input=row["input"],
                     input_digest=row["inputDigest"], idempotency_key=row["idempotencyKey"],
                     requested_by=row["requestedBy"], caller=row["caller"], context=row["context"] or {},
                     requester=requester)
        self._execute(action, new, data, request, self._redactor.child([]), lease=lease)

    def _not_to_resume(self, row: dict[str, Any], lease: Lease) -> str | None:
        """Why a lapsed run may not be run again by a sweep, if it may not."""
        key, envelope = self._stores.audit.key, canonical_bytes(takeover_envelope(row))
        if not (row.get("seal") and row.get("sealKeyId") and key.knows(str(row["sealKeyId"]))
                and key.check(str(row["sealKeyId"]), envelope, str(row["seal"]))):
            return (f"{_UNSEALED} (it was not accepted by this Golden Path, or was changed in the database since): "
                    "not run again")
        if self._stores.audit.has_run(str(row["id"])):  # finished (or refused) once: set running again by hand
            return "it was finished before (the audit holds its outcome) and set running again since: not run again"
        if lease.attempt > MAX_ATTEMPTS:
            return (f"the replica of each of its {lease.attempt - 1} attempts stopped: not run again by a sweep "
                    "(retry it; the same idempotency key may be used again)")
        requester = row.get("requester") or {}
        if requester.get("needsCaller"):
            return "it needs secrets only its caller had: retry it (the same idempotency key may be used again)"
        return None

    def _interrupt(self, row: dict[str, Any], lease: Lease, why: str, *, verified: bool = True) -> None:
        """Close a run that cannot be finished here: failed (its key released, so the caller's retry runs it),
        with every write its attempts had begun in the audit as `unknown`. Not `verified` (its seal is not valid):
        the audit names no actor from the row, only what the row claims."""
        error = InterruptedRunError(f"run {row['id']} was interrupted when its replica stopped, and {why}")
        error.run_id = row["id"]
        unknown = resolve_intents(self._intents(row["id"]), [], attempt=lease.attempt)
        with self._stores.database.transaction() as session:
            try:
                self._stores.runs.finish(row["id"], status="failed", output=None, error=error.to_problem(),
                                         changes=unknown, logs=[], session=session, lease=lease)
            except LeaseLost:
                return
            if not row["dryRun"]:
                requester = row.get("requester") or {}
                actor_user, actor_caller, claimed = ((row["requestedBy"], row["caller"], requester.get("claimedUser"))
                                                     if verified else (None, TAKEOVER_CALLER, row["requestedBy"]))
                self._stores.audit.append(NewAuditEvent(
                    actor_user=actor_user, actor_caller=actor_caller,
                    claimed_user=claimed, action_id=row["actionId"], run_id=row["id"],
                    input_digest=row["inputDigest"], result="failed", changes=unknown, detail=error.detail,
                ), session=session)
        self._metrics.runs.labels(row["actionId"], "failed", str(row["dryRun"]).lower()).inc()

    def _refuse(self, action: Action, new: NewRun, requester: Requester, error: NotAllowedError) -> None:
        """A refused run writes nothing but its own record and the audit event that shows who was refused."""
        self._create(replace(new, idempotency_key=None))
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
        self, action: Action, new: NewRun, data: dict[str, Any], request: RunRequest, redactor: Redactor, *,
        lease: Lease,
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
        if lease.attempt > 1:
            ctx.log.warning(f"attempt {lease.attempt}: the replica running this run stopped; this one took it over")
        started = time.perf_counter()
        error: GoldenPathError | None = None
        output: dict[str, Any] | None = None
        writing = not request.dry_run and not action.read_only
        journal = self._journal(lease) if writing else None
        try:
            with self._leases.holding(lease), journaling(journal), self._service_lock(ctx, writing):
                # another owner's service is a 409 before the action runs (out-of-tree actions too); the name is
                # held once the action's own policy checks pass (ActionContext.claim_all)
                if self._providers.claims is not None and (
                        found := self._providers.claims.conflicts(ctx.service_claims())):
                    raise found[0]
                if writing and request.precondition is not None and (why := request.precondition()):
                    raise ConflictError(why)
                if writing:
                    crashpoint("run.start")
                output = action.run(ctx)
                check_output(action, output)
                if writing:
                    crashpoint("run.before-record")
        except GoldenPathError as exc:
            exc.redact(redactor.text)  # the caller sees the detail and the errors: mask secrets first
            error = exc
        except Exception as exc:
            trace = "".join(traceback.format_exception(exc))  # with the traceback, masked like everything logged
            _log.error("action %s failed: %s", action.id, redactor.text(trace), extra={"run_id": new.id})
            error = RunFailedError(f"{action.id} failed unexpectedly; see the server log for run {new.id}")
        record = self._record(action, new, ctx, output=output, error=error, redactor=redactor,
                              seconds=time.perf_counter() - started, lease=lease)
        if error is not None:
            error.run_id = new.id
            raise error
        return {**record, "replayed": False, "resources": [vars(r) for r in ctx.resources]}

    def _journal(self, lease: Lease) -> Callable[[Change], None]:
        """Writes each intent ahead, sealed with the audit key for this run and attempt."""
        key = self._stores.audit.key

        def journal(change: Change) -> None:
            at, outcome = utc_now(), change.outcome.value
            seal = key.mac(canonical_bytes(intent_envelope(lease.run_id, {
                "attempt": lease.attempt, "kind": change.kind, "locator": change.locator, "outcome": outcome,
                "at": at})))
            self._stores.runs.intend(lease, kind=change.kind, locator=change.locator, outcome=outcome, at=at,
                                     seal=seal, seal_key_id=key.key_id)

        return journal

    def _intents(self, run_id: str) -> list[dict[str, Any]]:
        """The run's intents this Golden Path wrote: one a database administrator wrote, copied (from another run
        or attempt) or changed carries no valid seal, and never becomes evidence."""
        key, kept = self._stores.audit.key, []
        for intent in self._stores.runs.intents(run_id):
            seal, key_id = intent.get("seal"), intent.get("sealKeyId")
            if seal and key_id and key.knows(str(key_id)) and key.check(
                    str(key_id), canonical_bytes(intent_envelope(run_id, intent)), str(seal)):
                kept.append(intent)
            else:
                _log.warning("run %s: an intent with no valid seal (written or changed in the database) is left out "
                             "of its evidence", run_id, extra={"run_id": run_id})
        return kept

    @contextmanager
    def _service_lock(self, ctx: ActionContext, writing: bool) -> Iterator[None]:
        """Writing runs for one service take turns, on every replica: each reads, decides and writes alone."""
        if not writing or ctx.service is None:
            yield
            return
        try:
            with self._locks.hold(f"service:{ctx.service}", timeout=self._options.lock_timeout_seconds):
                yield
        except LockTimeout:
            raise BusyError(f"another run for service {ctx.service} is still in progress; retry later") from None

    def _record(
        self, action: Action, new: NewRun, ctx: ActionContext, *, output: dict[str, Any] | None,
        error: GoldenPathError | None, redactor: Redactor, seconds: float, lease: Lease,
    ) -> dict[str, Any]:
        status = "failed" if error else "succeeded"
        changes = [change.to_dict() for change in ctx.changes]
        if lease.attempt > 1 and not new.dry_run:  # what the attempts before this one began, read back now
            others = self._stores.runs.created_by_others(new.id)  # what they never made: another run did
            intents = [i for i in self._intents(new.id)
                       if i["outcome"] != "created" or (i["kind"], i["locator"]) not in others]
            changes = [*resolve_intents(intents, ctx.changes, attempt=lease.attempt), *changes]
        problem = redactor.data(error.to_problem()) if error else None
        # The run record, the inventory and the audit event commit together: no evidence without its run.
        inventory_changed = False
        with self._stores.database.transaction() as session:
            try:
                record = self._stores.runs.finish(
                    new.id, status=status, output=redactor.data(output) if output is not None else None,
                    error=problem, changes=changes, logs=ctx.log.lines, session=session, lease=lease,
                )
            except LeaseLost:
                # another replica took the run over while this one stalled: its attempt records the outcome
                raise BusyError(f"run {new.id} was taken over by another replica; retry with the same "
                                "idempotency key for its outcome") from None
            if not new.dry_run and error is None:
                inventory_changed = self._stores.inventory.upsert(ctx.resources, action_id=action.id, run_id=new.id,
                                                                  session=session)
            if not new.dry_run:
                self._stores.audit.append(NewAuditEvent(
                    actor_user=new.requested_by, actor_caller=new.caller,
                    claimed_user=ctx.requester.claimed_user, action_id=action.id, run_id=new.id,
                    input_digest=new.input_digest, result=status,
                    changes=[c for c in changes if c["outcome"] != "unchanged" or "attempt" in c],
                    detail=problem["detail"] if problem else None,
                ), session=session)
        if inventory_changed and self._on_inventory_change is not None:
            self._on_inventory_change()
        self._metrics.runs.labels(action.id, status, str(new.dry_run).lower()).inc()
        self._metrics.run_seconds.labels(action.id).observe(seconds)
        if isinstance(error, UpstreamError):
            self._metrics.upstream_errors.labels(error.provider, str(error.is_retryable).lower()).inc()
        return record


def recorded_requester(row: Mapping[str, Any]) -> Requester:
    """A run's requester as recorded (and sealed) when it was accepted."""
    recorded = row.get("requester") or {}
    return Requester(user=recorded.get("user"), caller=str(recorded.get("caller") or row["caller"]),
                     claimed_user=recorded.get("claimedUser"), groups=frozenset(recorded.get("groups") or ()),
                     admin=bool(recorded.get("admin")))


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
