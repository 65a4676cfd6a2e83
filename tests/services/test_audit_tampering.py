"""A database administrator edits the audit chain with plain SQL; verification names the event and the act."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from backend.audit_keys import FileAuditKey
from backend.services.audit import verify
from backend.store.audit import AuditStore
from backend.store.database import Database
from backend.store.models import AuditEvent
from tests.audit_chains import audit_store, insert_legacy, new_event, plain_sha256, rechain, rows


@pytest.fixture
def chain(database_url: str, tmp_path: Path) -> Iterator[tuple[Database, AuditStore]]:
    """Five keyed events, witnessed."""
    database, store = audit_store(database_url, tmp_path)
    for n in range(5):
        store.append(new_event(n))
    yield database, store
    database.dispose()


def _edit(database: Database, seq: int) -> None:
    with database.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(result="failed"))


def test_an_intact_chain_passes_with_exact_counts(chain: tuple[Database, AuditStore]) -> None:
    _, store = chain
    store.append(new_event(6))
    result = verify(store)
    assert (result.ok, result.checked, result.legacy, result.checkpoints, result.witnessed_seq) == (True, 6, 0, 6, 6)
    assert (result.first_bad_seq, result.kind, result.reason) == (None, None, None)


def test_one_edited_row_is_named(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    _edit(database, 3)
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq, result.checked) == (False, "edited", 3, 2)
    assert result.reason == "content does not match its MAC"


def test_an_edit_hidden_by_recomputing_plain_sha256_hashes_fails_the_mac(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    _edit(database, 3)
    rechain(database, start=3, mac=plain_sha256)  # what the unkeyed chain let a DBA do, unnoticed
    after = rows(database)
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(after))  # linked again
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "edited", 3)


def test_recomputing_without_the_key_is_impossible(chain: tuple[Database, AuditStore], tmp_path: Path) -> None:
    database, store = chain
    _edit(database, 2)
    rechain(database, start=2, mac=FileAuditKey(tmp_path / "the-dba-s-own.key").mac)  # the key id left as it was
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "edited", 2)


def test_a_chain_under_the_dba_s_own_key_is_not_accepted(chain: tuple[Database, AuditStore], tmp_path: Path) -> None:
    database, store = chain
    own = FileAuditKey(tmp_path / "the-dba-s-own.key")
    with database.transaction() as session:
        session.execute(update(AuditEvent).values(key_id=own.key_id))
    rechain(database, start=1, mac=own.mac)
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "unknown-key", 1)
    assert own.key_id in (result.reason or "") and store.key.key_id in (result.reason or "")


def test_verifying_with_another_key_file_fails(chain: tuple[Database, AuditStore], database_url: str,
                                               tmp_path: Path) -> None:
    other_db, other_key = audit_store(database_url, tmp_path, key_file="another.key", witness_file="none.jsonl")
    result = verify(other_key)
    other_db.dispose()
    assert (result.ok, result.kind, result.first_bad_seq, result.checked) == (False, "unknown-key", 1, 0)


def test_a_deleted_middle_row_is_named(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq, result.checked) == (False, "missing", 3, 2)
    assert result.reason == "event 3 is missing: deleted from the chain"


def test_a_deleted_row_renumbered_away_breaks_the_links(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
        for seq in (4, 5):
            session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq - 1))
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "relinked", 3)


def test_a_legacy_prefix_is_accepted(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    insert_legacy(database, 3)  # written before keyed chaining
    for n in range(2):
        store.append(new_event(n))
    assert [r["key_id"] for r in rows(database)] == [None, None, None, store.key.key_id, store.key.key_id]
    result = verify(store)
    assert (result.ok, result.checked, result.legacy, result.witnessed_seq) == (True, 5, 3, 5)
    database.dispose()


def test_an_edited_legacy_row_is_anchored_by_the_first_keyed_event(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    insert_legacy(database, 3)
    store.append(new_event(0))
    _edit(database, 2)
    rechain(database, start=2, stop=3, mac=plain_sha256, legacy=True)  # legacy rows have no MAC to break...
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "relinked", 4)  # ...but event 4's covers them
    database.dispose()


def test_a_legacy_row_after_keyed_ones_is_a_downgrade(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    _edit(database, 5)
    rechain(database, start=5, mac=plain_sha256, legacy=True)  # the last event, made "legacy" to escape the MAC
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "unkeyed", 5)
    assert "accepted only before the first keyed one" in (result.reason or "")
