"""The audit chain: appends link by MAC, and verification names the first tampered event."""

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import delete, update

from backend.audit_witness import Checkpoint
from backend.services.audit import export_jsonl, verify
from backend.store.models import AuditEvent
from tests.audit_chains import audit_store, new_event


def test_a_clean_chain_verifies(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    events = [store.append(new_event(n)) for n in range(5)]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    assert {e["key_id"] for e in events} == {store.key.key_id}
    assert verify(store).to_dict() == {"ok": True, "checked": 5, "firstBadSeq": None, "reason": None, "kind": None,
                                       "legacy": 0, "checkpoints": 5, "witnessedSeq": 5}
    database.dispose()


def test_an_edited_event_is_named(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    for n in range(5):
        store.append(new_event(n))
    with database.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor_user="user:default/mallory"))
    result = verify(store)
    assert (result.ok, result.first_bad_seq, result.checked, result.kind) == (False, 3, 2, "edited")
    assert result.reason == "content does not match its MAC"
    database.dispose()


def test_a_deleted_event_is_named(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    for n in range(4):
        store.append(new_event(n))
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    result = verify(store)
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 2, "missing")
    database.dispose()


def test_a_deleted_last_event_is_caught_by_the_head(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    for n in range(3):
        store.append(new_event(n))
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    other, unwitnessed = audit_store(database_url, tmp_path, witness_file="a-witness-that-saw-nothing.jsonl")
    result = verify(unwitnessed)
    other.dispose()
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 3, "truncated")
    assert result.reason == "the chain ends at 2 but its head says 3 — events were cut"
    database.dispose()


def test_concurrent_appends_keep_one_linear_chain_and_witness_every_head(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: store.append(new_event(n)), range(40)))
    result = verify(store)
    assert (result.ok, result.checked, result.checkpoints, result.witnessed_seq) == (True, 40, 40, 40)
    assert sorted(c.seq for c in store.witness.checkpoints()) == list(range(1, 41))
    database.dispose()


def test_the_head_is_witnessed_only_after_its_transaction_commits(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    with database.transaction() as session:
        store.append(new_event(1), session=session)
        store.append(new_event(2), session=session)
        assert store.witness.checkpoints() == []
    assert [(c.seq, c.key_id) for c in store.witness.checkpoints()] == [(2, store.key.key_id)]
    try:
        with database.transaction() as session:
            store.append(new_event(3), session=session)
            raise RuntimeError("the run's transaction fails")
    except RuntimeError:
        pass
    assert [c.seq for c in store.witness.checkpoints()] == [2]
    store.append(new_event(4))
    checkpoints: list[Checkpoint] = store.witness.checkpoints()
    assert [c.seq for c in checkpoints] == [2, 3]  # the rolled-back event 3 never existed: the next one is 3
    assert all(c.is_genuine(store.key) for c in checkpoints)
    assert verify(store).ok
    database.dispose()


def test_export_is_one_json_line_per_event(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    for n in range(3):
        store.append(new_event(n))
    lines = list(export_jsonl(store))
    assert len(lines) == 3
    assert all(line.endswith("\n") and line.startswith("{") for line in lines)
    database.dispose()
