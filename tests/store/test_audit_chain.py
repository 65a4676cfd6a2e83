"""The audit chain: appends link by hash, and verification names the first tampered event."""

import itertools
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import delete, update

from backend.services.audit import export_jsonl, verify
from backend.store.audit import AuditStore, NewAuditEvent
from backend.store.database import Database
from backend.store.models import AuditEvent


def _store(url: str) -> tuple[Database, AuditStore]:
    database = Database(url)
    database.migrate()
    return database, AuditStore(database)


def _event(n: int) -> NewAuditEvent:
    return NewAuditEvent(actor_user=f"user:default/u{n}", actor_caller="token:ci", action_id="goldenpath:x:y:z",
                         run_id=None, input_digest=f"{n:064x}", result="succeeded",
                         changes=[{"kind": "vault.policy", "locator": f"p{n}", "outcome": "created"}])


def test_a_clean_chain_verifies(database_url: str) -> None:
    database, store = _store(database_url)
    events = [store.append(_event(n)) for n in range(5)]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    assert verify(store).to_dict() == {"ok": True, "checked": 5, "firstBadSeq": None, "reason": None}
    database.dispose()


def test_an_edited_event_is_named(database_url: str) -> None:
    database, store = _store(database_url)
    for n in range(5):
        store.append(_event(n))
    with database.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor_user="user:default/mallory"))
    result = verify(store)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert "hash" in (result.reason or "")
    database.dispose()


def test_a_deleted_event_is_named(database_url: str) -> None:
    database, store = _store(database_url)
    for n in range(4):
        store.append(_event(n))
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    result = verify(store)
    assert (result.ok, result.first_bad_seq) == (False, 2)
    database.dispose()


def test_a_deleted_last_event_is_caught_by_the_head(database_url: str) -> None:
    database, store = _store(database_url)
    for n in range(3):
        store.append(_event(n))
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    result = verify(store)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    database.dispose()


def test_concurrent_appends_keep_one_linear_chain(database_url: str) -> None:
    database, store = _store(database_url)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: store.append(_event(n)), range(40)))
    result = verify(store)
    assert (result.ok, result.checked) == (True, 40)
    database.dispose()


def test_export_is_one_json_line_per_event(database_url: str) -> None:
    database, store = _store(database_url)
    for n in range(3):
        store.append(_event(n))
    lines = list(export_jsonl(store))
    assert len(lines) == 3
    assert all(line.endswith("\n") and line.startswith("{") for line in lines)
    database.dispose()
