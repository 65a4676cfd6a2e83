"""The audit chain: append-only events, each MACed (with a key kept outside the database) over its content and
the previous event's MAC; after each commit, the chain head is checkpointed to a witness outside the database."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from backend.audit_keys import AuditKey
from backend.audit_witness import Checkpoint, Witness
from backend.store.clock import utc_now
from backend.store.database import Database
from backend.store.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
# What events written before keyed chaining (key_id NULL) hashed with plain SHA-256; still checked as such.
LEGACY_FIELDS = (
    "seq", "id", "at", "actor_user", "actor_caller", "action_id", "run_id",
    "input_digest", "changes", "result", "detail", "prev_hash",
)
HASHED_FIELDS = (*LEGACY_FIELDS, "actor_claim", "key_id")
_PENDING_HEAD = "goldenpath.audit.pending_head"
_HOOKED = "goldenpath.audit.hooked"
_log = logging.getLogger("goldenpath.audit")


@dataclass(frozen=True)
class NewAuditEvent:
    actor_user: str | None  # the verified person
    actor_caller: str
    action_id: str
    run_id: str | None
    input_digest: str
    result: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    detail: str | None = None
    claimed_user: str | None = None  # a person the caller names but nothing verified (stored as actor_claim)


def event_content(values: dict[str, Any]) -> bytes:
    """The canonical bytes a keyed event's MAC covers (its key id and prev_hash included)."""
    return _canonical(values, HASHED_FIELDS)


def event_hash(values: dict[str, Any]) -> str:
    """The plain SHA-256 of a legacy (unkeyed) event."""
    return hashlib.sha256(_canonical(values, LEGACY_FIELDS)).hexdigest()


def _canonical(values: dict[str, Any], fields: tuple[str, ...]) -> bytes:
    return json.dumps({k: values[k] for k in fields}, sort_keys=True, separators=(",", ":")).encode()


def event_dict(row: AuditEvent) -> dict[str, Any]:
    return {name: getattr(row, name) for name in (*HASHED_FIELDS, "hash")}


class AuditStore:
    def __init__(self, database: Database, *, key: AuditKey, witness: Witness) -> None:
        self._db = database
        self.key = key
        self.witness = witness

    def append(self, new: NewAuditEvent, *, session: Session | None = None) -> dict[str, Any]:
        """Append in `session`'s transaction (or a new one); the head is witnessed once that transaction commits."""
        with self._db.transaction(session) as tx:
            head = tx.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
            values: dict[str, Any] = {
                "seq": head.seq + 1,
                "id": str(uuid.uuid4()),
                "at": utc_now(),
                "actor_user": new.actor_user,
                "actor_claim": new.claimed_user,
                "actor_caller": new.actor_caller,
                "action_id": new.action_id,
                "run_id": new.run_id,
                "input_digest": new.input_digest,
                "changes": new.changes,
                "result": new.result,
                "detail": new.detail,
                "prev_hash": head.hash,
                "key_id": self.key.key_id,
            }
            values["hash"] = self.key.mac(event_content(values))
            tx.add(AuditEvent(**values))
            head.seq, head.hash = values["seq"], values["hash"]
            self._checkpoint_after_commit(tx, values["seq"], values["hash"])
            return values

    def checkpoint(self) -> Checkpoint:
        """Witness the current head now (for an operator, e.g. after upgrading a chain of legacy events)."""
        seq, hash_ = self.head()
        checkpoint = Checkpoint.sign(self.key, seq=seq, hash=hash_, at=utc_now())
        self.witness.record(checkpoint)
        return checkpoint

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

    def _checkpoint_after_commit(self, session: Session, seq: int, hash_: str) -> None:
        # The witness must never hold a head that was rolled back, so it is written only after commit. The head
        # row lock orders appends in one transaction; concurrent transactions may witness out of order.
        session.info[_PENDING_HEAD] = (seq, hash_)
        if not session.info.get(_HOOKED):
            session.info[_HOOKED] = True
            event.listen(session, "after_commit", self._witness_pending)
            event.listen(session, "after_rollback", _drop_pending)

    def _witness_pending(self, session: Session) -> None:
        pending = session.info.pop(_PENDING_HEAD, None)
        if pending is None:
            return
        seq, hash_ = pending
        try:
            self.witness.record(Checkpoint.sign(self.key, seq=seq, hash=hash_, at=utc_now()))
        except Exception:
            # The event is committed; failing here would report a recorded run as failed. The gap shows in
            # `goldenpath audit verify` as an unwitnessed tail, and the next checkpoint covers this event too.
            _log.exception("audit event %s committed but its checkpoint was not witnessed", seq)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING_HEAD, None)
