"""Inventory of provisioned resources: one row per external object, upserted by (kind, locator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store.clock import utc_now
from backend.store.database import Database
from backend.store.models import Resource


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
    ) -> None:
        now = utc_now()
        with self._db.transaction(session) as tx:
            for record in records:
                query = select(Resource).where(Resource.kind == record.kind, Resource.locator == record.locator)
                row = tx.scalar(query)
                if row is None:
                    row = Resource(kind=record.kind, locator=record.locator, created_at=now)
                    tx.add(row)
                row.service, row.system, row.owner = record.service, record.system, record.owner
                row.environment, row.attributes = record.environment, record.attributes
                row.action_id, row.run_id, row.updated_at = action_id, run_id, now

    def list(self, *, service: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        query = select(Resource).order_by(Resource.kind, Resource.locator)
        if service:
            query = query.where(Resource.service == service)
        if kind:
            query = query.where(Resource.kind == kind)
        with self._db.transaction() as session:
            return [resource_dict(row) for row in session.scalars(query)]


def resource_dict(row: Resource) -> dict[str, Any]:
    return {
        "kind": row.kind, "locator": row.locator, "service": row.service, "system": row.system,
        "owner": row.owner, "environment": row.environment, "attributes": row.attributes,
        "actionId": row.action_id, "runId": row.run_id, "createdAt": row.created_at,
        "updatedAt": row.updated_at,
    }
