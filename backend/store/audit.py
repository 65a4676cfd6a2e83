"""The audit chain: append-only events, each hash-chained to the one before."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store.clock import utc_now
from backend.store.database import Database
from backend.store.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "seq", "id", "at", "actor_user", "actor_caller", "action_id", "run_id",
    "input_digest", "changes", "result", "detail", "prev_hash",
)


@dataclass(frozen=True)
class NewAuditEvent:
    actor_user: str | None
    actor_caller: str
    action_id: str
    run_id: str | None
    input_digest: str
    result: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    detail: str | None = None


def event_hash(values: dict[str, Any]) -> str:
    canonical = json.dumps({k: values[k] for k in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def event_dict(row: AuditEvent) -> dict[str, Any]:
    return {name: getattr(row, name) for name in (*HASHED_FIELDS, "hash")}


class AuditStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def append(self, new: NewAuditEvent, *, session: Session | None = None) -> dict[str, Any]:
        with self._db.transaction(session) as tx:
            head = tx.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
            values: dict[str, Any] = {
                "seq": head.seq + 1,
                "id": str(uuid.uuid4()),
                "at": utc_now(),
                "actor_user": new.actor_user,
                "actor_caller": new.actor_caller,
                "action_id": new.action_id,
                "run_id": new.run_id,
                "input_digest": new.input_digest,
                "changes": new.changes,
                "result": new.result,
                "detail": new.detail,
                "prev_hash": head.hash,
            }
            values["hash"] = event_hash(values)
            tx.add(AuditEvent(**values))
            head.seq, head.hash = values["seq"], values["hash"]
            return values

    def list(self, *, after: int = 0, limit: int = 100, action_id: str | None = None) -> list[dict[str, Any]]:
        query = select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(limit)
        if action_id:
            query = query.where(AuditEvent.action_id == action_id)
        with self._db.transaction() as session:
            return [event_dict(row) for row in session.scalars(query)]

    def iterate(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        after = 0
        while page := self.list(after=after, limit=batch):
            yield from page
            after = page[-1]["seq"]

    def head(self) -> tuple[int, str]:
        with self._db.transaction() as session:
            row = session.get_one(AuditHead, 1)
            return row.seq, row.hash
