"""Run records and their logs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from backend.store.clock import FORMAT, utc_now
from backend.store.database import Database
from backend.store.models import Run, RunIntent, RunLog


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
    requester: dict[str, Any] = field(default_factory=dict)  # as authorized: user, caller, groups, admin...
    seal: str | None = None  # MAC over the take-over envelope (see Runner), with the audit key
    seal_key_id: str | None = None


@dataclass(frozen=True)
class Lease:
    """Which replica runs which attempt of a run: every write of the run's outcome is fenced by it."""

    run_id: str
    holder: str
    attempt: int


class DuplicateKeyError(Exception):
    """Another run already holds this action's idempotency key."""


class LeaseLost(Exception):
    """Another replica took the run over (this one stopped renewing its lease): this attempt's outcome is void."""


class RunStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create(self, new: NewRun, *, holder: str | None = None, lease_seconds: float = 0.0) -> dict[str, Any]:
        row = Run(
            id=new.id, action_id=new.action_id, status="running", dry_run=new.dry_run, input=new.input,
            input_digest=new.input_digest, output=None, error=None, changes=[],
            idempotency_key=new.idempotency_key, requested_by=new.requested_by, caller=new.caller,
            context=new.context, created_at=utc_now(), finished_at=None, attempt=1, lease_holder=holder,
            lease_until=None, requester=new.requester, seal=new.seal, seal_key_id=new.seal_key_id,
        )
        try:
            with self._db.transaction() as session:
                row.lease_until = database_time(session, lease_seconds) if holder else None
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
        lease: Lease | None = None,
    ) -> dict[str, Any]:
        """Close the run; returns its record as stored (no read-back needed). With `lease`, only while this
        attempt still holds it (LeaseLost otherwise, and nothing is written)."""
        with self._db.transaction(session) as tx:
            row = tx.get_one(Run, run_id, with_for_update=lease is not None)
            if lease is not None and (row.status != "running" or row.lease_holder != lease.holder
                                      or row.attempt != lease.attempt):
                raise LeaseLost(run_id)
            row.status, row.output, row.error, row.changes = status, output, error, changes
            row.finished_at, row.lease_until = utc_now(), None
            if status == "failed":  # a failed run releases its key, so a retry after recovery can run
                row.idempotency_key = None
            tx.add_all(RunLog(run_id=run_id, **line) for line in logs)
            return run_dict(row, logs=[{**line} for line in logs])

    def renew(self, leases: list[Lease], *, seconds: float) -> set[str]:
        """Extend each lease still held; returns the run ids whose lease this holder lost."""
        lost: set[str] = set()
        with self._db.transaction() as tx:
            until = database_time(tx, seconds)
            for lease in leases:
                done = tx.execute(update(Run).where(
                    Run.id == lease.run_id, Run.status == "running", Run.lease_holder == lease.holder,
                    Run.attempt == lease.attempt).values(lease_until=until))
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    lost.add(lease.run_id)
        return lost

    def take_over(self, run_id: str, *, holder: str, seconds: float) -> Lease | None:
        """Become the run's holder as its next attempt, if it is still running and its lease has lapsed (or it
        never had one: a run left by an older version). One replica wins; the others get None."""
        with self._db.transaction() as tx:
            row = tx.get(Run, run_id, with_for_update=True)
            if row is None or row.status != "running" or (row.lease_until is not None
                                                           and row.lease_until >= database_time(tx)):
                return None
            row.attempt, row.lease_holder, row.lease_until = row.attempt + 1, holder, database_time(tx, seconds)
            return Lease(run_id, holder, row.attempt)

    def lapsed(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """Running runs whose replica stopped renewing their lease, oldest first."""
        with self._db.transaction() as tx:
            query = (select(Run).where(Run.status == "running",
                                       or_(Run.lease_until.is_(None), Run.lease_until < database_time(tx)))
                     .order_by(Run.created_at).limit(limit))
            return [{**run_dict(row, logs=None), "requester": row.requester, "seal": row.seal,
                     "sealKeyId": row.seal_key_id, "leaseHolder": row.lease_holder} for row in tx.scalars(query)]

    def intend(self, lease: Lease, *, kind: str, locator: str, outcome: str, at: str | None = None,
               seal: str | None = None, seal_key_id: str | None = None) -> None:
        """Write ahead, in its own committed transaction, that this attempt is about to make a change; LeaseLost
        (and nothing written) once another attempt holds the run: a stalled replica's writes stop there."""
        with self._db.transaction() as tx:
            row = tx.get(Run, lease.run_id, with_for_update=True)
            if row is None or row.status != "running" or row.lease_holder != lease.holder \
                    or row.attempt != lease.attempt:
                raise LeaseLost(lease.run_id)
            tx.add(RunIntent(run_id=lease.run_id, attempt=lease.attempt, kind=kind, locator=locator, outcome=outcome,
                             at=at or utc_now(), seal=seal, seal_key_id=seal_key_id))

    def intents(self, run_id: str) -> list[dict[str, Any]]:
        query = select(RunIntent).where(RunIntent.run_id == run_id).order_by(RunIntent.id)
        with self._db.transaction() as tx:
            return [{"attempt": i.attempt, "kind": i.kind, "locator": i.locator, "outcome": i.outcome, "at": i.at,
                     "seal": i.seal, "sealKeyId": i.seal_key_id} for i in tx.scalars(query)]

    def created_by_others(self, run_id: str) -> set[tuple[str, str]]:
        """(kind, locator) of each object this run wrote ahead it would create that another run later wrote ahead
        it would create too: that run found it absent, so this run's write never landed."""
        mine, theirs = aliased(RunIntent), aliased(RunIntent)
        query = (select(mine.kind, mine.locator).distinct()
                 .join(theirs, and_(theirs.kind == mine.kind, theirs.locator == mine.locator,
                                    theirs.run_id != mine.run_id, theirs.id > mine.id, theirs.outcome == "created"))
                 .where(mine.run_id == run_id, mine.outcome == "created"))
        with self._db.transaction() as tx:
            return {(kind, locator) for kind, locator in tx.execute(query)}

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._db.transaction() as session:
            row = session.get(Run, run_id)
            if row is None:
                return None
            logs = session.scalars(select(RunLog).where(RunLog.run_id == run_id).order_by(RunLog.id))
            return run_dict(row, logs=[log_dict(line) for line in logs])

    def sealed(self, run_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The runs `run_ids` with what their seal covers (requester, seal, key id), to check before using them."""
        ids = sorted(set(run_ids))
        if not ids:
            return []
        with self._db.transaction() as session:
            return [{**run_dict(row, logs=None), "requester": row.requester, "seal": row.seal,
                     "sealKeyId": row.seal_key_id} for row in session.scalars(select(Run).where(Run.id.in_(ids)))]

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
        "finishedAt": row.finished_at, "attempt": row.attempt,
    }
    if logs is not None:
        record["log"] = logs
    return record


def takeover_envelope(row: dict[str, Any]) -> dict[str, Any]:
    """What the seal covers: enough to run the request again, nothing a take-over could widen, and whom the audit
    names as its actor."""
    return {"run": row["id"], "action": row["actionId"], "dryRun": row["dryRun"], "inputDigest": row["inputDigest"],
            "input": row["input"], "requester": row.get("requester"), "context": row["context"],
            "requestedBy": row["requestedBy"], "caller": row["caller"]}


def intent_envelope(run_id: str, intent: dict[str, Any]) -> dict[str, Any]:
    """What an intent's seal covers: which run and attempt announced which change, and when."""
    return {"intentOf": run_id, "attempt": intent["attempt"], "kind": intent["kind"], "locator": intent["locator"],
            "outcome": intent["outcome"], "at": intent["at"]}


def database_time(tx: Session, seconds: float = 0.0) -> str:
    """The database's clock, `seconds` on: leases are written and compared on this one clock, so a replica whose
    own clock is off never sees a renewed lease as lapsed (nor has its own seen so). SQLite's clock is its host's."""
    if tx.get_bind().dialect.name == "postgresql":
        now: datetime = tx.execute(text("SELECT clock_timestamp()")).scalar_one()
    else:
        stamp = tx.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        now = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return (now.astimezone(UTC) + timedelta(seconds=seconds)).strftime(FORMAT)


def log_dict(line: RunLog) -> dict[str, Any]:
    return {"at": line.at, "level": line.level, "message": line.message, "fields": line.fields}
