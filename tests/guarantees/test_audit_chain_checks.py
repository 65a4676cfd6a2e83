"""`audit verify`, fed each kind of broken chain on a real database: it names the first bad event and what was done
to it (edited, missing, relinked, unkeyed, unknown-key, truncated, rewritten, forged-checkpoint, bad-witness,
head-mismatch, unwitnessed), and every field an event records is covered by its MAC."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update

from backend.audit_keys import FileAuditKey
from backend.audit_witness import Checkpoint
from backend.services.audit import verify
from backend.store.audit import AuditStore, NewAuditEvent
from backend.store.database import Database
from backend.store.models import AuditEvent, AuditHead
from tests.adversarial.test_evidence_witness import age
from tests.audit_chains import audit_store, new_event, plain_sha256, rechain, rows, set_head

EVENTS = 5
WITNESS = "witness.jsonl"
Chain = tuple[Database, AuditStore, Path]


def full_event(n: int) -> NewAuditEvent:
    """An event with every optional field set, so that an edit of any of them changes a value."""
    return NewAuditEvent(actor_user=f"user:default/u{n}", actor_caller="token:ci", action_id="goldenpath:x:y:z",
                         run_id=f"00000000-0000-0000-0000-{n:012d}", input_digest=f"{n:064x}", result="failed",
                         changes=[{"kind": "vault.policy", "locator": f"p{n}", "outcome": "created"}],
                         detail=f"detail {n}", claimed_user=f"user:default/claimed{n}")


@pytest.fixture
def chain(database_url: str, tmp_path: Path) -> Iterator[Chain]:
    """Five keyed events, every field set, each head witnessed."""
    database, store = audit_store(database_url, tmp_path, witness_file=WITNESS)
    for n in range(EVENTS):
        store.append(full_event(n))
    assert verify(store).ok
    yield database, store, tmp_path
    database.dispose()


def edit(database: Database, seq: int, **values: object) -> None:
    with database.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(**values))


@pytest.mark.parametrize(("column", "value"), [
    ("id", "00000000-0000-0000-0000-00000000beef"), ("at", "2020-01-01T00:00:00.000000Z"),
    ("actor_user", "user:default/mallory"), ("actor_claim", "user:default/ceo"), ("actor_claim", None),
    ("actor_caller", "token:other"), ("action_id", "goldenpath:x:y:w"), ("run_id", None),
    ("input_digest", "f" * 64), ("changes", []), ("result", "succeeded"), ("detail", None), ("detail", "fine"),
], ids=["id", "at", "actor_user", "actor_claim", "actor_claim-cleared", "actor_caller", "action_id", "run_id-cleared",
        "input_digest", "changes", "result", "detail-cleared", "detail"])
def test_every_recorded_field_is_covered_by_the_mac(chain: Chain, column: str, value: object) -> None:
    database, store, _ = chain
    edit(database, 3, **{column: value})
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq, result.checked) == (False, "edited", 3, 2), result


# -- each kind of broken chain -------------------------------------------------------------------------------------

def splice_from_another_chain(database: Database, store: AuditStore, tmp: Path) -> None:
    """Events 4 and 5 replaced by genuine events of another chain under the same key (a replica, a staging database
    sharing the key file): each MAC holds and seq runs on; only event 4's link to event 3 shows the splice. The
    witness saw only the first three events (the last two were written while it could not be)."""
    other_db, other = audit_store(f"sqlite:///{tmp}/other.db", tmp, witness_file="other-witness.jsonl")
    for n in range(EVENTS):
        other.append(new_event(n))
    foreign = [row for row in rows(other_db) if row["seq"] > 3]
    other_db.dispose()
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq > 3))
        session.execute(insert(AuditEvent), foreign)
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=EVENTS, hash=foreign[-1]["hash"]))
    cut_witness_after(tmp, 3)


def cut_witness_after(tmp: Path, seq: int) -> None:
    path = tmp / WITNESS
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if json.loads(line)["seq"] <= seq))


def cut_the_last_event(database: Database, store: AuditStore, tmp: Path) -> None:
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == EVENTS))
    set_head(database, EVENTS - 1)


def under_the_dbas_own_key(database: Database, store: AuditStore, tmp: Path) -> None:
    own = FileAuditKey(tmp / "the-dba-s-own.key")
    with database.transaction() as session:
        session.execute(update(AuditEvent).values(key_id=own.key_id, result="succeeded"))
    rechain(database, start=1, mac=own.mac)


def forge_a_checkpoint(database: Database, store: AuditStore, tmp: Path) -> None:
    head = rows(database)[-1]
    forged = Checkpoint.sign(FileAuditKey(tmp / "forger.key"), seq=9, hash=head["hash"], at=head["at"])
    claimed = Checkpoint(seq=9, hash=head["hash"], at=head["at"], key_id=store.key.key_id, mac=forged.mac)
    with (tmp / WITNESS).open("a") as witness:
        witness.write(claimed.to_json() + "\n")


def unwitnessed(database: Database, store: AuditStore, tmp: Path) -> None:
    """Old enough to be witnessed by now, but the witness's last two checkpoints were cut."""
    age(database, store, tmp / WITNESS)
    cut_witness_after(tmp, 3)


def edit_an_event(database: Database, store: AuditStore, tmp: Path) -> None:
    edit(database, 3, result="succeeded")


def delete_an_event(database: Database, store: AuditStore, tmp: Path) -> None:
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 3))


def turn_the_last_event_legacy(database: Database, store: AuditStore, tmp: Path) -> None:
    """Edited, then made to look written before keyed chaining (plain SHA-256, no key id) to escape the MAC."""
    edit(database, EVENTS, result="succeeded")
    rechain(database, start=EVENTS, mac=plain_sha256, legacy=True)


def rewrite_everything_as_legacy(database: Database, store: AuditStore, tmp: Path) -> None:
    rechain(database, start=1, mac=plain_sha256, legacy=True)


def write_a_line_that_is_no_checkpoint(database: Database, store: AuditStore, tmp: Path) -> None:
    with (tmp / WITNESS).open("a") as witness:
        witness.write('{"seq": 6}\n')


def change_the_heads_hash(database: Database, store: AuditStore, tmp: Path) -> None:
    with database.transaction() as session:
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash="f" * 64))


def move_the_head_back(database: Database, store: AuditStore, tmp: Path) -> None:
    set_head(database, 3)


def delete_the_last_event_unseen(database: Database, store: AuditStore, tmp: Path) -> None:
    """The head row still says 5 (the DBA left it), and the witness lost its last checkpoint too."""
    with database.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == EVENTS))
    cut_witness_after(tmp, EVENTS - 1)


Breakage = Callable[[Database, AuditStore, Path], None]
BREAKAGES: dict[str, tuple[Breakage, str, int | None]] = {  # what is done: how to do it, what verify says, where
    "edited": (edit_an_event, "edited", 3),
    "missing": (delete_an_event, "missing", 3),
    "relinked": (splice_from_another_chain, "relinked", 4),
    "unkeyed": (turn_the_last_event_legacy, "unkeyed", EVENTS),
    "unknown-key": (under_the_dbas_own_key, "unknown-key", 1),
    "truncated": (cut_the_last_event, "truncated", EVENTS),
    "truncated-head-left": (delete_the_last_event_unseen, "truncated", EVENTS),
    "rewritten": (rewrite_everything_as_legacy, "rewritten", 1),
    "forged-checkpoint": (forge_a_checkpoint, "forged-checkpoint", 9),
    "bad-witness": (write_a_line_that_is_no_checkpoint, "bad-witness", None),
    "head-hash": (change_the_heads_hash, "head-mismatch", EVENTS),
    "head-behind": (move_the_head_back, "head-mismatch", EVENTS),
    "unwitnessed": (unwitnessed, "unwitnessed", 4),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_kind_of_broken_chain_is_named_at_its_first_bad_event(chain: Chain, breakage: str) -> None:
    database, store, tmp = chain
    breaking, kind, first_bad = BREAKAGES[breakage]
    breaking(database, store, tmp)
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, kind, first_bad), result
