"""What only the witness can show: a tail cut cleanly (head moved too), a history rewritten wholesale; and what
a forged or damaged witness looks like."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from backend.audit_keys import FileAuditKey
from backend.audit_witness import Checkpoint
from backend.services.audit import verify
from backend.store.audit import AuditStore
from backend.store.database import Database
from backend.store.models import AuditEvent
from tests.audit_chains import audit_store, new_event, plain_sha256, rechain, rows, set_head

WITNESS = "witness.jsonl"


@pytest.fixture
def chain(database_url: str, tmp_path: Path) -> Iterator[tuple[Database, AuditStore]]:
    """Five keyed events, each head witnessed in tmp_path/witness.jsonl."""
    database, store = audit_store(database_url, tmp_path, witness_file=WITNESS)
    for n in range(5):
        store.append(new_event(n))
    yield database, store
    database.dispose()


def _cut_after(database: Database, seq: int) -> None:
    """Delete every event after `seq` and move the head back to it: nothing left in the database shows it."""
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq > seq))
    set_head(database, seq)


def test_a_cleanly_truncated_tail_is_caught_by_the_witness(chain: tuple[Database, AuditStore], database_url: str,
                                                          tmp_path: Path) -> None:
    database, store = chain
    _cut_after(database, 3)
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq, result.checked) == (False, "truncated", 4, 3)
    assert result.reason == "the chain ends at 3 but the witness saw 5 — events were cut"
    blind_db, blind = audit_store(database_url, tmp_path, witness_file="a-witness-that-saw-nothing.jsonl")
    assert verify(blind).ok  # the database alone cannot tell: the witness is what catches it
    blind_db.dispose()


def test_a_wholesale_rewrite_as_legacy_events_contradicts_the_witness(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    rechain(database, start=1, mac=plain_sha256, legacy=True)  # every row unkeyed: a consistent SHA-256 chain
    assert {r["key_id"] for r in rows(database)} == {None}
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "rewritten", 1)
    assert "history was rewritten" in (result.reason or "")


def test_a_forged_checkpoint_is_named(chain: tuple[Database, AuditStore], tmp_path: Path) -> None:
    _, store = chain
    forger = FileAuditKey(tmp_path / "forger.key")
    head = rows(chain[0])[-1]
    forged = Checkpoint.sign(forger, seq=9, hash=head["hash"], at=head["at"])
    claimed = Checkpoint(seq=9, hash=head["hash"], at=head["at"], key_id=store.key.key_id, mac=forged.mac)
    with (tmp_path / WITNESS).open("a") as witness:
        witness.write(claimed.to_json() + "\n")
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "forged-checkpoint", 9)  # not "truncated"
    assert result.reason == "the witness's checkpoint of event 9 does not match its MAC: forged"


def test_an_edited_checkpoint_of_an_existing_event_is_forged(chain: tuple[Database, AuditStore],
                                                             tmp_path: Path) -> None:
    _, store = chain
    path = tmp_path / WITNESS
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[1]["hash"] = "f" * 64
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "forged-checkpoint", 2)


def test_a_checkpoint_under_another_key_is_forged(chain: tuple[Database, AuditStore], tmp_path: Path) -> None:
    _, store = chain
    forger = FileAuditKey(tmp_path / "forger.key")
    with (tmp_path / WITNESS).open("a") as witness:
        witness.write(Checkpoint.sign(forger, seq=2, hash="0" * 64, at="2030-01-01T00:00:00.000000Z").to_json()
                      + "\n")
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "forged-checkpoint", 2)
    assert forger.key_id in (result.reason or "")


def test_a_line_that_is_no_checkpoint_is_reported(chain: tuple[Database, AuditStore], tmp_path: Path) -> None:
    _, store = chain
    with (tmp_path / WITNESS).open("a") as witness:
        witness.write('{"seq": 6}\n')
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "bad-witness", None)
    assert "line 6 of the witness" in (result.reason or "")


def test_the_witness_file_is_private(chain: tuple[Database, AuditStore], tmp_path: Path) -> None:
    assert (tmp_path / WITNESS).stat().st_mode & 0o777 == 0o600
