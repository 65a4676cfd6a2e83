"""Run records and their logs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.store.clock import utc_now
from backend.store.database import Database
from backend.store.models import Run, RunLog


@dataclass(frozen=True)
class NewRun:
    id: str
    action_id: str
    dry_run: bool
    input: dict[str, Any]
    input_digest: str
    idempotency_key: str | None
    requested_by: str | None
    caller: str
    context: dict[str, Any]


class DuplicateKeyError(Exception):
    """Another run already holds this action's idempotency key."""


class RunStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create(self, new: NewRun) -> dict[str, Any]:
        row = Run(
            id=new.id, action_id=new.action_id, status="running", dry_run=new.dry_run, input=new.input,
            input_digest=new.input_digest, output=None, error=None, changes=[],
            idempotency_key=new.idempotency_key, requested_by=new.requested_by, caller=new.caller,
            context=new.context, created_at=utc_now(), finished_at=None,
        )
        try:
            with self._db.transaction() as session:
                session.add(row)
        except IntegrityError as exc:
            raise DuplicateKeyError(new.idempotency_key) from exc
        return run_dict(row, logs=[])

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        output: dict[str, Any] | None,
        error: dict[str, Any] | None,
        changes: list[dict[str, Any]],
        logs: list[dict[str, Any]],
        session: Session | None = None,
    ) -> dict[str, Any]:
        """Close the run; returns its record as stored (no read-back needed)."""
        with self._db.transaction(session) as tx:
            row = tx.get_one(Run, run_id)
            row.status, row.output, row.error, row.changes = status, output, error, changes
            row.finished_at = utc_now()
            if status == "failed":  # a failed run releases its key, so a retry after recovery can run
                row.idempotency_key = None
            tx.add_all(RunLog(run_id=run_id, **line) for line in logs)
            return run_dict(row, logs=[{**line} for line in logs])

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._db.transaction() as session:
            row = session.get(Run, run_id)
            if row is None:
                return None
            logs = session.scalars(select(RunLog).where(RunLog.run_id == run_id).order_by(RunLog.id))
            return run_dict(row, logs=[log_dict(line) for line in logs])

    def find_by_key(self, action_id: str, key: str) -> dict[str, Any] | None:
        query = select(Run.id).where(Run.action_id == action_id, Run.idempotency_key == key)
        with self._db.transaction() as session:
            run_id = session.scalar(query)
        return self.get(run_id) if run_id else None

    def list(
        self, *, limit: int = 50, before: str | None = None, action_id: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        query = select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
        if before:
            query = query.where(Run.created_at < before)
        if action_id:
            query = query.where(Run.action_id == action_id)
        if status:
            query = query.where(Run.status == status)
        with self._db.transaction() as session:
            return [run_dict(row, logs=None) for row in session.scalars(query)]


def run_dict(row: Run, *, logs: list[dict[str, Any]] | None) -> dict[str, Any]:
    record = {
        "id": row.id, "actionId": row.action_id, "status": row.status, "dryRun": row.dry_run,
        "input": row.input, "inputDigest": row.input_digest, "output": row.output, "error": row.error,
        "changes": row.changes, "idempotencyKey": row.idempotency_key, "requestedBy": row.requested_by,
        "caller": row.caller, "context": row.context, "createdAt": row.created_at,
        "finishedAt": row.finished_at,
    }
    if logs is not None:
        record["log"] = logs
    return record


def log_dict(line: RunLog) -> dict[str, Any]:
    return {"at": line.at, "level": line.level, "message": line.message, "fields": line.fields}
