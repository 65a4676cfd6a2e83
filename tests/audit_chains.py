"""Audit chains for tests: a store on a real database with a key file and a witness in tmp_path, events, and
what a database administrator can do with plain SQL (edit rows, recompute hashes, move the head)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from backend.audit_keys import FileAuditKey
from backend.audit_witness import FileWitness
from backend.store.audit import AuditStore, NewAuditEvent, event_content, event_dict, event_hash
from backend.store.clock import utc_now
from backend.store.database import Database
from backend.store.models import AuditEvent, AuditHead


def audit_store(url: str, tmp_path: Path, *, key_file: str = "audit.key",
                witness_file: str = "witness.jsonl") -> tuple[Database, AuditStore]:
    database = Database(url)
    database.migrate()
    return database, AuditStore(database, key=FileAuditKey(tmp_path / key_file),
                                witness=FileWitness(tmp_path / witness_file))


def new_event(n: int) -> NewAuditEvent:
    return NewAuditEvent(actor_user=f"user:default/u{n}", actor_caller="token:ci", action_id="goldenpath:x:y:z",
                         run_id=None, input_digest=f"{n:064x}", result="succeeded",
                         changes=[{"kind": "vault.policy", "locator": f"p{n}", "outcome": "created"}])


def plain_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows(database: Database) -> list[dict[str, Any]]:
    with database.transaction() as session:
        return [event_dict(row) for row in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]


def rechain(database: Database, *, start: int, mac: Callable[[bytes], str], legacy: bool = False,
            stop: int | None = None) -> None:
    """What a DBA does to hide an edit: recompute the hashes from `start` (to `stop`, else the end) with `mac`
    over the keyed content (or, `legacy`, as unkeyed plain SHA-256 events), relinking each, and move the head."""
    previous = None
    with database.transaction() as session:
        for row in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            if start <= row.seq <= (stop or row.seq):
                row.prev_hash = previous or row.prev_hash
                if legacy:
                    row.key_id = None
                values = event_dict(row)
                row.hash = event_hash(values) if legacy else mac(event_content(values))
            previous = row.hash
        if previous is not None:
            session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=previous))


def set_head(database: Database, seq: int) -> None:
    with database.transaction() as session:
        hash_ = session.scalars(select(AuditEvent.hash).where(AuditEvent.seq == seq)).one()
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=hash_))


def insert_legacy(database: Database, count: int) -> None:
    """Events as the code before keyed chaining wrote them: plain SHA-256, key_id NULL."""
    with database.transaction() as session:
        head = session.get_one(AuditHead, 1)
        for n in range(count):
            values: dict[str, Any] = {
                "seq": head.seq + 1, "id": str(uuid.uuid4()), "at": utc_now(), "actor_user": f"user:default/old{n}",
                "actor_claim": None, "actor_caller": "token:ci", "action_id": "goldenpath:x:y:z", "run_id": None,
                "input_digest": f"{n:064x}", "changes": [], "result": "succeeded", "detail": None,
                "prev_hash": head.hash, "key_id": None,
            }
            values["hash"] = event_hash(values)
            session.add(AuditEvent(**values))
            head.seq, head.hash = values["seq"], values["hash"]
