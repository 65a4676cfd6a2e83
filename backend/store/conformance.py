"""The last conformance check of each resource and service, and the revision bump that shows a new status in the
catalog feed (only a status that changed re-renders a service, so the feed's ETag moves only then)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from backend.store.database import Database
from backend.store.locks import lock_key
from backend.store.models import Conformance, InventoryRevision, Resource


@dataclass(frozen=True)
class Checked:
    """One resource's (or, with kind `service`, the whole service's) result."""

    kind: str
    locator: str
    status: str
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StatusChange:
    kind: str
    locator: str
    before: str | None
    after: str
    findings: list[dict[str, Any]]


class ConformanceStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, service: str, results: Iterable[Checked], *, report: dict[str, Any], at: str,
             session: Session | None = None) -> list[StatusChange]:
        """Store one service's check (the service's own row carries the report, as the checker sealed it);
        answers the statuses that changed. A changed status marks the service's inventory rows with a new
        inventory revision."""
        changes: list[StatusChange] = []
        with self._db.transaction(session) as tx:
            if tx.get_bind().dialect.name == "postgresql":  # two replicas' checks of one service: one at a time
                # (SQLite's BEGIN IMMEDIATE already serializes writers), so neither inserts a row the other did,
                # nor audits a status change the other already audited
                tx.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"conformance:{service}")})
            rows = {(row.kind, row.locator): row for row in
                    tx.scalars(select(Conformance).where(Conformance.service == service))}
            seen: set[tuple[str, str]] = set()
            for result in results:
                key = (result.kind, result.locator)
                seen.add(key)
                row = rows.get(key)
                if row is None:
                    row = Conformance(kind=result.kind, locator=result.locator, service=service,
                                      status=result.status, since=at, checked_at=at, findings=result.findings)
                    tx.add(row)
                    changes.append(StatusChange(*key, None, result.status, result.findings))
                elif row.status != result.status:
                    changes.append(StatusChange(*key, row.status, result.status, result.findings))
                    row.status, row.since = result.status, at
                row.checked_at, row.findings = at, result.findings
                if key == ("service", service):
                    row.report = report
            for key, row in rows.items():  # a resource no longer in the inventory has nothing left to check
                if key not in seen:
                    tx.delete(row)
            if changes:
                tx.execute(update(InventoryRevision).where(InventoryRevision.id == 1)
                           .values(value=InventoryRevision.value + 1))
                revision = tx.scalar(select(InventoryRevision.value).where(InventoryRevision.id == 1))
                tx.execute(update(Resource).where(Resource.service == service).values(revision=int(revision or 0)))
        return changes

    def report(self, service: str) -> dict[str, Any] | None:
        with self._db.transaction() as session:
            row = session.scalar(select(Conformance).where(Conformance.kind == "service",
                                                           Conformance.locator == service))
            return None if row is None or row.report is None else dict(row.report)

    def counts(self) -> dict[tuple[str, str], int]:
        """How many resources (and services, kind `service`) hold each status: (kind, status) → count."""
        query = select(Conformance.kind, Conformance.status, func.count()).group_by(Conformance.kind,
                                                                                     Conformance.status)
        with self._db.transaction() as session:
            return {(kind, status): int(count) for kind, status, count in session.execute(query)}
