"""The audit chain: append-only events, each MACed (with a key kept outside the database) over its content and
the previous event's MAC; after each commit, the chain head is checkpointed to a witness outside the database."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, event, select
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


class AuditHeadError(Exception):
    """The chain's head row is missing or damaged: no checkpoint can be made of it."""


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


# Events are read column by column, `changes` as its stored text: a DBA can put anything in a row (on SQLite a BLOB
# in a text column, text that is no JSON in the JSON one), and what verification gets must then be a value that
# fails its MAC, not an error while reading that hides which event it was.
_COLUMNS = tuple(cast(AuditEvent.changes, Text).label("changes") if name == "changes" else getattr(AuditEvent, name)
                 for name in (*HASHED_FIELDS, "hash"))


# What a text column of every database can hold: PostgreSQL text refuses NUL, and neither driver can encode a lone
# surrogate. An event carrying one (an upstream error's detail, say) is recorded with U+FFFD there, MACed as stored,
# rather than failing to record the run.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: str | None) -> str | None:
    return _UNSTORABLE.sub("\ufffd", value) if value is not None else None


def _stored(name: str, value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if name == "changes" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value  # kept as text: no genuine event's MAC covers a string here
    return value


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
                "actor_user": _storable(new.actor_user),
                "actor_claim": _storable(new.claimed_user),
                "actor_caller": _storable(new.actor_caller),
                "action_id": _storable(new.action_id),
                "run_id": _storable(new.run_id),
                "input_digest": _storable(new.input_digest),
                "changes": new.changes,
                "result": _storable(new.result),
                "detail": _storable(new.detail),
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
        head = self.head()
        if head is None:
            raise AuditHeadError("the audit chain's head row is missing or damaged: run `goldenpath audit verify`")
        seq, hash_ = head
        checkpoint = Checkpoint.sign(self.key, seq=seq, hash=hash_, at=utc_now())
        self.witness.record(checkpoint)
        return checkpoint

    def list(self, *, after: int = 0, limit: int = 100, action_id: str | None = None) -> list[dict[str, Any]]:
        query = select(*_COLUMNS).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(limit)
        if action_id:
            query = query.where(AuditEvent.action_id == action_id)
        with self._db.transaction() as session:
            return [{name: _stored(name, value) for name, value in row._mapping.items()}
                    for row in session.execute(query)]

    def has_run(self, run_id: str) -> bool:
        """Whether an event names this run: it was finished (or refused) once."""
        with self._db.transaction() as session:
            return session.scalar(select(AuditEvent.seq).where(AuditEvent.run_id == run_id).limit(1)) is not None

    def iterate(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        after = 0
        while page := self.list(after=after, limit=batch):
            yield from page
            after = page[-1]["seq"]

    def head(self) -> tuple[int, str] | None:
        """The stored head (seq, hash); None when its row is missing or holds values of another type."""
        with self._db.transaction() as session:
            row = session.get(AuditHead, 1)
            if row is None or not isinstance(row.seq, int) or not isinstance(row.hash, str):
                return None
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
            # The event is committed; failing here would report a recorded run as failed. The next checkpoint
            # covers this event too; if none comes, `goldenpath audit verify` reports it `unwitnessed`.
            _log.exception("audit event %s committed but its checkpoint was not witnessed", seq)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING_HEAD, None)
