"""The witness, attacked by someone who can touch its file but not the key (delete it, empty it, cut its last lines),
written out of order by concurrent writers, or failing to be written: the first must be reported once the events
it should hold are old enough to have been witnessed, the others must never raise a false alarm."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from backend.audit_witness import Checkpoint
from backend.services.audit import WITNESS_GRACE_SECONDS, verify
from backend.store.audit import HASHED_FIELDS, AuditStore, event_content
from backend.store.database import Database
from backend.store.models import AuditEvent, AuditHead
from tests.audit_chains import audit_store, new_event

WITNESS = "witness.jsonl"
EVENTS = 5


def _long_ago(n: int) -> str:
    when = datetime.now(UTC) - timedelta(seconds=WITNESS_GRACE_SECONDS * 10) + timedelta(milliseconds=n)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def age(database: Database, store: AuditStore, witness: Path) -> None:
    """The same events as if appended ten grace periods ago: re-MACed with the real key, head and the checkpoints
    the witness already holds re-signed to match (what the service would have written back then)."""
    hashes: dict[int, tuple[str, str]] = {}
    previous = None
    with database.transaction() as session:
        for row in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            row.at = _long_ago(row.seq)
            row.prev_hash = previous or row.prev_hash
            values = {name: getattr(row, name) for name in HASHED_FIELDS}
            row.hash = store.key.mac(event_content(values))
            previous = row.hash
            hashes[row.seq] = (row.hash, row.at)
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=previous))
    if witness.exists() and witness.is_file():
        seqs = [json.loads(line)["seq"] for line in witness.read_text().splitlines()]
        witness.write_text("".join(Checkpoint.sign(store.key, seq=s, hash=hashes[s][0], at=hashes[s][1]).to_json()
                                   + "\n" for s in seqs))


@pytest.fixture
def aged(database_url: str, tmp_path: Path) -> Iterator[tuple[Database, AuditStore, Path]]:
    """Five keyed events, each witnessed, all long enough ago that their checkpoints must be in the witness."""
    database, store = audit_store(database_url, tmp_path, witness_file=WITNESS)
    for n in range(EVENTS):
        store.append(new_event(n))
    age(database, store, tmp_path / WITNESS)
    result = verify(store)
    assert (result.ok, result.checked, result.witnessed_seq) == (True, EVENTS, EVENTS), result
    yield database, store, tmp_path / WITNESS
    database.dispose()


def assert_unwitnessed(store: AuditStore, first: int) -> None:
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "unwitnessed", first), result
    assert "goldenpath audit checkpoint" in (result.reason or "")


# -- someone with the witness file but not the key ---------------------------------------------------------------

def test_a_deleted_witness_is_reported(aged: tuple[Database, AuditStore, Path]) -> None:
    _, store, witness = aged
    witness.unlink()
    assert_unwitnessed(store, 1)


def test_an_emptied_witness_is_reported(aged: tuple[Database, AuditStore, Path]) -> None:
    _, store, witness = aged
    witness.write_text("")
    assert_unwitnessed(store, 1)


@pytest.mark.parametrize("cut", [1, 3])
def test_a_witness_with_its_last_lines_cut_is_reported(aged: tuple[Database, AuditStore, Path], cut: int) -> None:
    _, store, witness = aged
    lines = witness.read_text().splitlines(keepends=True)
    witness.write_text("".join(lines[:-cut]))
    assert_unwitnessed(store, EVENTS - cut + 1)


def test_a_witness_whose_last_newline_is_cut_is_reported(aged: tuple[Database, AuditStore, Path]) -> None:
    """A line without its newline reads as a checkpoint still being written, so it is not counted."""
    _, store, witness = aged
    witness.write_bytes(witness.read_bytes().rstrip(b"\n"))
    assert_unwitnessed(store, EVENTS)


def test_the_witness_cut_and_the_tail_cut_together_is_still_reported(aged: tuple[Database, AuditStore, Path]) -> None:
    """The DBA cuts events 4-5 and someone cuts their checkpoints: events 1-3 are still unwitnessed."""
    database, store, witness = aged
    with database.transaction() as session:
        session.execute(AuditEvent.__table__.delete().where(AuditEvent.seq > 3))
        hash3 = session.scalars(select(AuditEvent.hash).where(AuditEvent.seq == 3)).one()
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=3, hash=hash3))
    witness.write_text("".join(witness.read_text().splitlines(keepends=True)[:1]))
    assert_unwitnessed(store, 2)


def test_a_witness_that_cannot_be_read_is_reported_not_a_crash(aged: tuple[Database, AuditStore, Path]) -> None:
    _, store, witness = aged
    witness.unlink()
    witness.mkdir()
    result = verify(store)
    assert (result.ok, result.kind) == (False, "bad-witness"), result
    assert "not a regular file" in (result.reason or "")


def test_a_fifo_in_the_witness_s_place_blocks_neither_writes_nor_verification(
        aged: tuple[Database, AuditStore, Path]) -> None:
    _, store, witness = aged
    witness.unlink()
    os.mkfifo(witness, 0o600)
    finished: list[Any] = []
    thread = threading.Thread(target=lambda: finished.extend([store.append(new_event(9)), verify(store)]),
                              daemon=True)
    thread.start()
    thread.join(10)
    assert len(finished) == 2, "an audited write or verification blocked on the FIFO"
    assert (finished[1].ok, finished[1].kind) == (False, "bad-witness")


def test_events_just_appended_may_still_be_unwitnessed(database_url: str, tmp_path: Path) -> None:
    """Within the grace period a missing checkpoint may be one being written right now: no alarm, but counted."""
    database, store = audit_store(database_url, tmp_path, witness_file=WITNESS)
    for n in range(3):
        store.append(new_event(n))
    (tmp_path / WITNESS).unlink()
    result = verify(store)
    assert (result.ok, result.checked, result.witnessed_seq) == (True, 3, 0)
    database.dispose()


# -- the witness failing to be written ----------------------------------------------------------------------------

def test_a_failed_witness_write_keeps_the_event_and_is_reported_once_old(
        database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    database, store = audit_store(database_url, tmp_path, witness_file=WITNESS)
    store.append(new_event(0))
    (tmp_path / WITNESS).unlink()
    (tmp_path / WITNESS).mkdir()  # the witness cannot be written
    with caplog.at_level(logging.ERROR, logger="goldenpath.audit"):
        event = store.append(new_event(1))
    assert event["seq"] == 2 and len(store.list()) == 2  # the event is kept: the run it records happened
    assert "committed but its checkpoint was not witnessed" in caplog.text
    (tmp_path / WITNESS).rmdir()
    age(database, store, tmp_path / WITNESS)
    assert_unwitnessed(store, 1)
    store.checkpoint()  # what the report tells the operator to do
    result = verify(store)
    assert (result.ok, result.witnessed_seq) == (True, 2), result
    database.dispose()


# -- concurrent writers -------------------------------------------------------------------------------------------

def test_checkpoints_out_of_order_and_repeated_are_accepted(aged: tuple[Database, AuditStore, Path]) -> None:
    _, store, witness = aged
    lines = witness.read_text().splitlines(keepends=True)
    witness.write_text("".join(reversed(lines)) + lines[2] + lines[0])
    result = verify(store)
    assert (result.ok, result.checkpoints, result.witnessed_seq) == (True, EVENTS + 2, EVENTS), result


def test_verify_during_concurrent_appends_never_raises_a_false_alarm(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path, witness_file=WITNESS)
    store.append(new_event(0))
    done, alarms = threading.Event(), []

    def verifier() -> None:
        while not done.is_set():
            result = verify(store)
            if not result.ok:
                alarms.append(result)

    thread = threading.Thread(target=verifier)
    thread.start()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda n: store.append(new_event(n)), range(1, 61)))
    finally:
        done.set()
        thread.join(60)
    assert alarms == []
    result = verify(store)
    assert (result.ok, result.checked, result.witnessed_seq) == (True, 61, 61)
    database.dispose()


# -- the key file -------------------------------------------------------------------------------------------------

def test_the_witness_is_created_private(aged: tuple[Database, AuditStore, Path]) -> None:
    assert aged[2].stat().st_mode & 0o777 == 0o600
    assert os.access(aged[2], os.R_OK)
