"""Conformance: whether what Golden Path made for a service is still what it made.

The desired state of a resource is what the last run that made it asked for and Golden Path accepted: that run's
input, sealed with the audit key when it was accepted (a row a database administrator wrote or changed is not
trusted as a desired state). A check replays that run's action as a dry-run, as its requester: every provider
reads the live object and reports, field by field, what it would change, and nothing is written. Each resource
is then

- `conformant`: nothing would change;
- `drifted`: some field or object under it would be changed or made again (the findings name them);
- `missing`: its main object (the repository, secrets path, namespace, catalog entry) is gone;
- `foreign`: someone else holds it now (another owner's marker, label or name claim);
- `unknown`: it could not be read (a backend away, or a desired state that cannot be trusted or replayed) —
  never treated as drift.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from backend.errors import ConflictError, GoldenPathError
from backend.kinds import resource_kinds
from backend.plugin_api import Action, ActionContext, Policy, Providers, RunLogger
from backend.providers.changes import Change, Outcome
from backend.redaction import Redactor
from backend.services.registry import ActionRegistry
from backend.services.run_evidence import canonical_bytes
from backend.services.run_input import canonical_owner, input_digest, load_input
from backend.services.runner import authorization_problem, recorded_requester
from backend.store.audit import AuditStore, NewAuditEvent
from backend.store.clock import utc_now
from backend.store.conformance import Checked, ConformanceStore, StatusChange
from backend.store.database import Database
from backend.store.inventory import InventoryStore, ResourceRecord
from backend.store.runs import RunStore, takeover_envelope

_log = logging.getLogger("goldenpath.conformance")
RECONCILER = "goldenpath:reconciler"
AUDIT_ACTION = "goldenpath:conformance"
SERVICE_KIND = "service"


class Status(StrEnum):
    CONFORMANT = "conformant"
    UNKNOWN = "unknown"
    DRIFTED = "drifted"
    MISSING = "missing"
    FOREIGN = "foreign"


_VALUES = frozenset(status.value for status in Status)
_RANK = {Status.CONFORMANT: 0, Status.UNKNOWN: 1, Status.DRIFTED: 2, Status.MISSING: 3, Status.FOREIGN: 4}
NOT_CONFORMANT = frozenset({Status.DRIFTED, Status.MISSING, Status.FOREIGN})
SERVICE_MAIN_OBJECT = "catalog.component"  # a catalog registration's (the other kinds declare theirs)


def main_object(kind: str) -> str | None:
    """The object whose absence makes a resource of `kind` `missing` rather than `drifted`."""
    declared = resource_kinds().get(kind)
    return declared.main_object if declared else SERVICE_MAIN_OBJECT if kind == SERVICE_KIND else None


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.CONFORMANT)


@dataclass
class _Result:
    status: Status = Status.CONFORMANT
    findings: list[dict[str, Any]] = field(default_factory=list)
    detail: str | None = None

    def worsen(self, status: Status, detail: str | None = None) -> None:
        if _RANK[status] > _RANK[self.status]:
            self.status = status
            if detail:
                self.detail = detail


@dataclass(frozen=True)
class Inspection:
    report: dict[str, Any]
    # run → the environments where its desired state reaches resources another (later) run's desired state holds
    overlapping: dict[str, frozenset[str | None]]


@dataclass(frozen=True)
class ConformanceStores:
    database: Database
    runs: RunStore
    audit: AuditStore
    inventory: InventoryStore
    conformance: ConformanceStore


class ConformanceChecker:
    def __init__(self, *, registry: ActionRegistry, stores: ConformanceStores, providers: Providers, policy: Policy,
                 redactor: Redactor, on_status_change: Callable[[], object] | None = None) -> None:
        self._registry, self._stores, self._providers, self._policy = registry, stores, providers, policy
        self._redactor, self._on_status_change = redactor, on_status_change

    def services(self) -> list[str]:
        return sorted({row["service"] for row in self._stores.inventory.rows() if row.get("service")})

    def stored(self, service: str) -> dict[str, Any] | None:
        """The last check's report (None: never checked, or the stored one carries no valid seal: a report a
        database administrator wrote or changed, or moved from another service, is never served)."""
        stored = self._stores.conformance.report(service)
        if stored is None:
            return None
        key, report, seal, key_id = self._stores.audit.key, stored.get("report"), stored.get("seal"), \
            stored.get("sealKeyId")
        if not (isinstance(report, dict) and seal and key_id and key.knows(str(key_id))
                and key.check(str(key_id), _report_bytes(service, report), str(seal))):
            _log.warning("conformance report of %s carries no valid seal (written or changed in the database): "
                         "not served", service)
            return None
        return report

    def check(self, service: str, *, caller: str = RECONCILER) -> dict[str, Any]:
        """Check every resource of `service` against its desired state, store the result (auditing each status
        that became non-conformant, or conformant again) and answer the report."""
        return self.inspect(service, caller=caller).report

    def inspect(self, service: str, *, caller: str = RECONCILER) -> Inspection:
        """check(), with what a repair needs to know besides the report."""
        rows = self._stores.inventory.list(service=service)
        by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_run[row["runId"]].append(row)
        results: dict[tuple[str, str], _Result] = {(row["kind"], row["locator"]): _Result() for row in rows}
        shared, overlapping = _Result(), dict[str, frozenset[str | None]]()
        for run in self._stores.runs.sealed(by_run):
            if reached := self._replay(service, run, by_run.pop(run["id"]), results, shared):
                overlapping[run["id"]] = reached
        for missing_runs in by_run.values():  # rows naming a run the database no longer holds
            for row in missing_runs:
                results[(row["kind"], row["locator"])].worsen(
                    Status.UNKNOWN, "the run that made it is not in the database: its desired state is unknown")
        at = utc_now()
        overall = worst([shared.status, *(r.status for r in results.values())])
        report: dict[str, Any] = {
            "service": service, "status": overall.value, "checkedAt": at, "findings": shared.findings,
            "resources": [_resource_report(row, results[(row["kind"], row["locator"])]) for row in rows],
        }
        report = dict(self._redactor.data(report))
        shared_findings: list[dict[str, Any]] = list(report["findings"])
        checked = [Checked(kind, locator, result.status.value, list(self._redactor.data(result.findings)))
                   for (kind, locator), result in results.items() if (kind, locator) != (SERVICE_KIND, service)]
        checked.append(Checked(SERVICE_KIND, service, overall.value, shared_findings))
        key = self._stores.audit.key
        sealed = {"report": report, "seal": key.mac(_report_bytes(service, report)), "sealKeyId": key.key_id}
        with self._stores.database.transaction() as session:
            changed = self._stores.conformance.save(service, checked, report=sealed, at=at, session=session)
            for change in changed:
                if _worth_auditing(change):
                    self._stores.audit.append(_audit_event(service, change, caller), session=session)
        if changed and self._on_status_change is not None:
            self._on_status_change()
        return Inspection(report=report, overlapping=overlapping)

    def desired_by(self, service: str) -> dict[tuple[str, str], str]:
        """(kind, locator) → the run whose input is that resource's desired state, as the inventory says now."""
        return {(row["kind"], row["locator"]): row["runId"] for row in self._stores.inventory.list(service=service)}

    def desired_request(self, run_id: str, service: str) -> tuple[Action, dict[str, Any], dict[str, Any]] | str:
        """The action, raw input and context of run `run_id` to run again for `service` (read and checked now:
        the row may have changed since the check); or why it may not be."""
        found = self._stores.runs.sealed([run_id])
        if not found:
            return "the run that made it is not in the database"
        run = found[0]
        desired = self._desired(run, service)
        if isinstance(desired, str):
            return desired
        return desired[0], dict(run["input"]), dict(run.get("context") or {})

    def _replay(self, service: str, run: dict[str, Any], rows: list[dict[str, Any]],
                results: dict[tuple[str, str], _Result], shared: _Result) -> frozenset[str | None]:
        """Replay `run` and classify what it made; answers the environments of the resources it also reaches
        whose desired state is another run's (running it again for real there would undo that run's work)."""
        mine = [results[(row["kind"], row["locator"])] for row in rows]
        desired = self._desired(run, service)
        if isinstance(desired, str):
            for result in mine:
                result.worsen(Status.UNKNOWN, desired)
            return frozenset()
        action, data = desired
        ctx = self._context(action, data, run, service)
        status, detail = Status.UNKNOWN, ""
        try:
            if self._providers.claims is not None and (found := self._providers.claims.conflicts(
                    ctx.service_claims())):
                raise found[0]
            action.run(ctx)
        except ConflictError as exc:
            status, detail = Status.FOREIGN, exc.detail
        except GoldenPathError as exc:
            detail = f"it could not be read: {exc.detail}"
        except Exception as exc:  # a check must never stop the pass; the cause goes to the server log only
            _log.error("conformance of %s: %s failed: %s", service, action.id, self._redactor.text(repr(exc)))
            detail = "checking it failed unexpectedly; see the server log"
        else:
            return self._classify(ctx, rows, results, shared)
        for result in mine:
            result.worsen(status, self._redactor.text(detail))
        return frozenset()

    def _desired(self, run: dict[str, Any], service: str) -> tuple[Action, dict[str, Any]] | str:
        """The action and input a run asked for, as Golden Path accepted it; or why they cannot be trusted."""
        if not self._sealed(run):
            return ("the run that made it carries no valid seal (it was written or changed in the database): its "
                    "desired state is not trusted")
        try:
            action = self._registry.get(run["actionId"])
            data = canonical_owner(action, load_input(action.input_schema, run["input"]))
        except GoldenPathError as exc:
            return f"its desired state cannot be read again: {exc.detail}"
        if input_digest(action.input_schema, data, dry_run=False) != run["inputDigest"]:
            return "its desired state held secrets only its requester had: not compared"
        if action.service_field and data.get(action.service_field) != service:
            return "the run it names made another service: its desired state is not trusted"
        # every run is sealed when accepted, before its requester is authorized: a run its (sealed) requester was
        # refused never made anything, and must never become what a repair writes as admin (a dry-run's digest
        # differs, above)
        if authorization_problem(action, data, recorded_requester(run)) is not None:
            return "the run it names was not allowed to its requester: its desired state is not trusted"
        return action, data

    def _context(self, action: Action, data: dict[str, Any], run: dict[str, Any], service: str) -> ActionContext:
        requester = recorded_requester(run)
        owner = data.get(action.owner_field) if action.owner_field else None
        check_id = f"conformance-{uuid.uuid4()}"
        return ActionContext(
            input=data, dry_run=True, run_id=check_id, requester=requester,
            log=RunLogger(self._redactor.child([]), check_id), providers=self._providers, policy=self._policy,
            template_ref=(run.get("context") or {}).get("templateRef"),
            owner=owner if isinstance(owner, str) else None, service=service)

    def _classify(self, ctx: ActionContext, rows: list[dict[str, Any]], results: dict[tuple[str, str], _Result],
                  shared: _Result) -> frozenset[str | None]:
        ours = {(row["kind"], row["locator"]) for row in rows}
        made = {(r.kind, r.locator) for r in ctx.resources}
        others = results.keys() - ours
        overlaps = frozenset(r.environment for r in ctx.resources if (r.kind, r.locator) in others)
        for key in ours - made:
            results[key].worsen(Status.UNKNOWN, "its desired state no longer makes it under today's configuration")
        for change, resource in _attributed(ctx):
            if not change.is_write:
                continue
            if resource is not None and (resource.kind, resource.locator) in results.keys() - ours:
                continue  # another run's desired state is this resource's: that run's replay judges it
            owned = resource is not None and (resource.kind, resource.locator) in ours
            target = results[(resource.kind, resource.locator)] if resource is not None and owned else shared
            main = resource is not None and main_object(resource.kind) == change.kind
            status = Status.MISSING if main and change.outcome is Outcome.CREATED else Status.DRIFTED
            target.findings.append(_finding(change, status))
            target.worsen(status)
        return overlaps

    def _sealed(self, run: dict[str, Any]) -> bool:
        key, seal, key_id = self._stores.audit.key, run.get("seal"), run.get("sealKeyId")
        return bool(seal and key_id and key.knows(str(key_id))
                    and key.check(str(key_id), canonical_bytes(takeover_envelope(run)), str(seal)))


def _report_bytes(service: str, report: dict[str, Any]) -> bytes:
    """What a stored report's seal covers: the report, and the service it is stored for."""
    return canonical_bytes({"conformanceOf": service, "report": report})


def _attributed(ctx: ActionContext) -> list[tuple[Change, ResourceRecord | None]]:
    """Each change with its resource: the one it was recorded with, else the last one recorded before it, else the
    action's only resource; changes before any (a shared mount, an auth method) belong to no resource."""
    only = ctx.resources[0] if len(ctx.resources) == 1 else None
    current: ResourceRecord | None = None
    out: list[tuple[Change, ResourceRecord | None]] = []
    for change, resource in ctx.observed:
        current = resource or current
        out.append((change, current or only))
    return out


def _finding(change: Change, status: Status) -> dict[str, Any]:
    finding: dict[str, Any] = {"kind": change.kind, "locator": change.locator, "status": status.value,
                               "wouldBe": change.outcome.value}
    if change.fields:
        finding["fields"] = list(change.fields)
    if change.details.get("differences"):
        finding["differences"] = list(change.details["differences"])
    return finding


def _resource_report(row: dict[str, Any], result: _Result) -> dict[str, Any]:
    report: dict[str, Any] = {"kind": row["kind"], "locator": row["locator"], "environment": row["environment"],
                              "status": result.status.value, "findings": result.findings,
                              "desiredBy": {"runId": row["runId"], "actionId": row["actionId"]}}
    if result.detail:
        report["detail"] = result.detail
    return report


def _worth_auditing(change: StatusChange) -> bool:
    """A newly found drift, loss or take-over, and its end; not a first check that finds all well, nor a backend
    that could not be read (an outage would write thousands of events that show nothing about the resources)."""
    after = Status(change.after)
    before = Status(change.before) if change.before in _VALUES else None  # a status a DBA wrote: none
    return after in NOT_CONFORMANT or (after is Status.CONFORMANT and before in NOT_CONFORMANT)


def _audit_event(service: str, change: StatusChange, caller: str) -> NewAuditEvent:
    """Nothing was changed by Golden Path, so the event's changes are empty; its detail names what was found."""
    digest = hashlib.sha256(canonical_bytes({"service": service, "kind": change.kind,
                                             "locator": change.locator})).hexdigest()
    found = "; ".join(f"{f['kind']} {f['locator']}: {f['status']}"
                      + (f" ({', '.join(f['fields'])})" if f.get("fields") else "") for f in change.findings)
    return NewAuditEvent(
        actor_user=None, actor_caller=caller, action_id=AUDIT_ACTION, run_id=None, input_digest=digest,
        result=change.after, detail=f"{change.kind} {change.locator} of service {service}: "
                                    f"{change.before or 'not checked before'} -> {change.after}"
                                    + (f": {found}" if found else ""))
