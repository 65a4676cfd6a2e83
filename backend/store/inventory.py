"""Inventory of provisioned resources: one row per external object, upserted by (kind, locator)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.store.clock import utc_now
from backend.store.database import Database
from backend.store.models import Conformance, InventoryRevision, Resource


@dataclass(frozen=True)
class ResourceRecord:
    kind: str
    locator: str
    service: str | None = None
    system: str | None = None
    owner: str | None = None
    environment: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


class InventoryStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def upsert(
        self, records: list[ResourceRecord], *, action_id: str, run_id: str, session: Session | None = None
    ) -> bool:
        """Insert or update each record; returns whether the inventory's content changed. Changed rows carry the
        new inventory revision, so the catalog feed can tell which services to render again."""
        now = utc_now()
        with self._db.transaction(session) as tx:
            changed: list[Resource] = []
            for record in records:
                query = select(Resource).where(Resource.kind == record.kind, Resource.locator == record.locator)
                row = tx.scalar(query)
                if row is None:
                    row = _insert(tx, Resource(
                        kind=record.kind, locator=record.locator, service=record.service, system=record.system,
                        owner=record.owner, environment=record.environment, attributes=record.attributes,
                        action_id=action_id, run_id=run_id, created_at=now, updated_at=now))
                    if row is not None:
                        changed.append(row)
                        continue
                    row = tx.scalar(query)  # a concurrent run inserted it first: this run updates that row
                    if row is None:
                        raise RuntimeError(f"inventory row {record.kind} {record.locator} vanished")
                if _content(row) != (record.service, record.system, record.owner, record.environment,
                                     record.attributes):
                    changed.append(row)
                row.service, row.system, row.owner = record.service, record.system, record.owner
                row.environment, row.attributes = record.environment, record.attributes
                row.action_id, row.run_id, row.updated_at = action_id, run_id, now
            if changed:  # a re-run that changed nothing keeps the catalog feed's cached body (and ETag)
                tx.execute(update(InventoryRevision).where(InventoryRevision.id == 1)
                           .values(value=InventoryRevision.value + 1))
                revision = tx.scalar(select(InventoryRevision.value).where(InventoryRevision.id == 1))
                for row in changed:
                    row.revision = int(revision or 0)
        return bool(changed)

    def rows(self, services: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every resource (or those of `services`), for rendering the catalog: plain rows, no ORM objects
        (it may be 40,000 of them), each with its last conformance status and since when (None: not checked)."""
        columns = (Resource.kind, Resource.locator, Resource.service, Resource.system, Resource.owner,
                   Resource.environment, Resource.attributes, Conformance.status.label("conformance"),
                   Conformance.since.label("checkedAt"))
        query = select(*columns).outerjoin(Conformance, (Conformance.kind == Resource.kind) & (
            Conformance.locator == Resource.locator)).order_by(Resource.id)
        if services is not None:
            query = query.where(Resource.service.in_(sorted(services)))
        with self._db.transaction() as session:
            return [dict(row._mapping) for row in session.execute(query)]

    def changed_since(self, revision: int) -> list[tuple[str, str, str | None]]:
        """(kind, locator, service) of each row that changed after inventory revision `revision`."""
        query = select(Resource.kind, Resource.locator, Resource.service).where(Resource.revision > revision)
        with self._db.transaction() as session:
            return [(kind, locator, service) for kind, locator, service in session.execute(query)]

    def revision(self) -> int:
        """Changes whenever the inventory does (one small read)."""
        with self._db.transaction() as session:
            return int(session.scalar(select(InventoryRevision.value).where(InventoryRevision.id == 1)) or 0)

    def find(self, kind: str, locator: str) -> dict[str, Any] | None:
        with self._db.transaction() as session:
            row = session.scalar(select(Resource).where(Resource.kind == kind, Resource.locator == locator))
            return None if row is None else resource_dict(row)

    def list(self, *, service: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        query = select(Resource).order_by(Resource.kind, Resource.locator)
        if service:
            query = query.where(Resource.service == service)
        if kind:
            query = query.where(Resource.kind == kind)
        with self._db.transaction() as session:
            return [resource_dict(row) for row in session.scalars(query)]


def _insert(tx: Session, row: Resource) -> Resource | None:
    """Insert `row` in a savepoint; None when another transaction committed the same (kind, locator) first, so the
    later of two concurrent runs of one owner updates that row instead of losing its whole record (run, audit)."""
    try:
        with tx.begin_nested():
            tx.add(row)
    except IntegrityError:
        return None
    return row


def _content(row: Resource) -> tuple[Any, ...]:
    return (row.service, row.system, row.owner, row.environment, row.attributes)


def resource_dict(row: Resource) -> dict[str, Any]:
    return {
        "kind": row.kind, "locator": row.locator, "service": row.service, "system": row.system,
        "owner": row.owner, "environment": row.environment, "attributes": row.attributes,
        "actionId": row.action_id, "runId": row.run_id, "createdAt": row.created_at,
        "updatedAt": row.updated_at,
    }
