"""A hostile database administrator (plain SQL on SQLite or PostgreSQL, no key file, no witness file) tries to
make `verify` pass over an edited, reordered, replayed, shortened or lengthened audit chain, or to make it crash.
Every attack must end in `ok: False` naming an event, never in `ok: True` and never in an exception."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from sqlalchemy import text

from backend.audit_witness import FileWitness
from backend.embedded import EmbeddedOpenBao
from backend.providers.audit_transit import TransitAuditKey
from backend.services.audit import verify
from backend.store.audit import GENESIS_HASH, AuditStore, event_content, event_hash
from backend.store.database import Database
from tests.audit_chains import audit_store, insert_legacy, new_event, plain_sha256, rechain, rows, set_head

EVENTS = 6


@pytest.fixture
def chain(database_url: str, tmp_path: Path) -> Iterator[tuple[Database, AuditStore]]:
    """Six keyed events, each head witnessed."""
    database, store = audit_store(database_url, tmp_path)
    for n in range(EVENTS):
        store.append(new_event(n))
    assert verify(store).ok
    yield database, store
    database.dispose()


def sql(database: Database, statement: str, **params: Any) -> None:
    """What the DBA types: one statement in its own transaction."""
    with database.engine.begin() as connection:
        connection.execute(text(statement), params)


def is_sqlite(database: Database) -> bool:
    return database.engine.dialect.name == "sqlite"


def assert_caught(store: AuditStore, *kinds: str, at: int | None = None) -> None:
    result = verify(store)
    assert not result.ok, result
    assert result.kind in kinds, result
    if at is not None:
        assert result.first_bad_seq == at, result


def insert_row(database: Database, values: dict[str, Any]) -> None:
    columns = ", ".join(values)
    sql(database, f"INSERT INTO audit_events ({columns}) VALUES ({', '.join(':' + c for c in values)})",  # noqa: S608
        **{k: (_json(v) if k == "changes" else v) for k, v in values.items()})


def _json(value: Any) -> str:
    return json.dumps(value)


# -- reorder, replay, insert ------------------------------------------------------------------------------------

def test_swapping_two_rows_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    sql(database, "UPDATE audit_events SET seq = 1000 WHERE seq = 2")
    sql(database, "UPDATE audit_events SET seq = 2 WHERE seq = 4")
    sql(database, "UPDATE audit_events SET seq = 4 WHERE seq = 1000")
    assert_caught(store, "relinked", "edited", at=2)


def test_swapping_two_rows_with_their_links_fixed_is_caught(chain: tuple[Database, AuditStore]) -> None:
    """The DBA swaps rows 3 and 4 and rewrites prev_hash so every link holds: the MACs cover seq and prev_hash."""
    database, store = chain
    before = rows(database)
    sql(database, "UPDATE audit_events SET seq = 1000 WHERE seq = 3")
    sql(database, "UPDATE audit_events SET seq = 3, prev_hash = :p WHERE seq = 4", p=before[1]["hash"])
    sql(database, "UPDATE audit_events SET seq = 4, prev_hash = :p WHERE seq = 1000", p=before[3]["hash"])
    sql(database, "UPDATE audit_events SET prev_hash = :p WHERE seq = 5", p=before[2]["hash"])
    assert_caught(store, "edited", at=3)


@pytest.mark.parametrize("relink", [False, True])
def test_replaying_a_valid_old_event_at_the_end_is_caught(chain: tuple[Database, AuditStore], relink: bool) -> None:
    """A genuine event (with its genuine MAC) copied to seq 7, the head moved to it: seq and prev_hash are MACed."""
    database, store = chain
    old = rows(database)[1]
    replay = {**old, "seq": EVENTS + 1, "id": str(uuid.uuid4())}
    if relink:
        replay["prev_hash"] = rows(database)[-1]["hash"]
    insert_row(database, replay)
    sql(database, "UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1", s=EVENTS + 1, h=replay["hash"])
    assert_caught(store, "edited", "relinked", at=EVENTS + 1)


def test_a_row_inserted_in_the_middle_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    before = rows(database)
    for seq in range(EVENTS, 2, -1):  # make room at 3
        sql(database, "UPDATE audit_events SET seq = :n WHERE seq = :s", n=seq + 1, s=seq)
    forged = {**before[1], "seq": 3, "id": str(uuid.uuid4()), "prev_hash": before[1]["hash"],
              "actor_user": "user:default/mallory"}
    forged["hash"] = plain_sha256(event_content(forged))
    insert_row(database, forged)
    sql(database, "UPDATE audit_events SET prev_hash = :p WHERE seq = 4", p=forged["hash"])
    sql(database, "UPDATE audit_head SET seq = :s WHERE id = 1", s=EVENTS + 1)
    assert_caught(store, "edited", at=3)


def test_fake_legacy_rows_put_before_the_keyed_chain_are_caught(chain: tuple[Database, AuditStore]) -> None:
    """Two invented "old" events at seq 1-2, the real chain shifted up to start at 3 and linked to them."""
    database, store = chain
    for seq in range(EVENTS, 0, -1):
        sql(database, "UPDATE audit_events SET seq = :n WHERE seq = :s", n=seq + 2, s=seq)
    previous = GENESIS_HASH
    for seq in (1, 2):
        fake: dict[str, Any] = {
            "seq": seq, "id": str(uuid.uuid4()), "at": "2020-01-01T00:00:00.000000Z", "actor_user": "user:default/x",
            "actor_claim": None, "actor_caller": "token:ci", "action_id": "goldenpath:x:y:z", "run_id": None,
            "input_digest": "0" * 64, "changes": [], "result": "succeeded", "detail": None, "prev_hash": previous,
            "key_id": None}
        fake["hash"] = event_hash(fake)
        insert_row(database, fake)
        previous = fake["hash"]
    sql(database, "UPDATE audit_events SET prev_hash = :p WHERE seq = 3", p=previous)
    sql(database, "UPDATE audit_head SET seq = :s WHERE id = 1", s=EVENTS + 2)
    assert_caught(store, "edited", "rewritten")


# -- making events look legacy (unkeyed) --------------------------------------------------------------------------

@pytest.mark.parametrize("start", [1, 3, EVENTS])
def test_a_keyed_suffix_turned_legacy_and_edited_is_caught(chain: tuple[Database, AuditStore], start: int) -> None:
    database, store = chain
    sql(database, "UPDATE audit_events SET result = 'failed' WHERE seq = :s", s=start)
    rechain(database, start=start, mac=plain_sha256, legacy=True)
    assert_caught(store, "unkeyed", "rewritten", at=start)


@pytest.mark.parametrize("seq", [1, 3])
def test_one_keyed_event_turned_legacy_is_anchored_by_the_next(chain: tuple[Database, AuditStore], seq: int) -> None:
    database, store = chain
    sql(database, "UPDATE audit_events SET actor_user = 'user:default/mallory' WHERE seq = :s", s=seq)
    rechain(database, start=seq, stop=seq, mac=plain_sha256, legacy=True)
    assert_caught(store, "relinked", "unkeyed", "rewritten")


def test_an_edited_legacy_prefix_is_caught_by_a_checkpoint_of_it(database_url: str, tmp_path: Path) -> None:
    """A database upgraded from before keyed chaining, witnessed once by `goldenpath audit checkpoint`; no keyed
    event yet: the checkpoint alone anchors the legacy events."""
    database, store = audit_store(database_url, tmp_path)
    insert_legacy(database, 3)
    store.checkpoint()
    assert verify(store).ok
    sql(database, "UPDATE audit_events SET actor_user = 'user:default/mallory' WHERE seq = 2")
    rechain(database, start=2, mac=plain_sha256, legacy=True)
    assert_caught(store, "rewritten", at=3)
    database.dispose()


def test_a_key_id_set_to_another_name_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    sql(database, "UPDATE audit_events SET key_id = 'file:0000000000000000' WHERE seq = 2")
    assert_caught(store, "unknown-key", at=2)


# -- deleting and cutting -----------------------------------------------------------------------------------------

def test_the_first_event_deleted_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    sql(database, "DELETE FROM audit_events WHERE seq = 1")
    assert_caught(store, "missing", at=1)


def test_everything_deleted_and_the_head_reset_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    sql(database, "DELETE FROM audit_events")
    sql(database, "UPDATE audit_head SET seq = 0, hash = :h WHERE id = 1", h=GENESIS_HASH)
    assert_caught(store, "truncated", at=1)


def test_a_renumbered_gap_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    sql(database, "UPDATE audit_events SET seq = 100 WHERE seq = :s", s=EVENTS)
    assert_caught(store, "missing", at=EVENTS)


# -- the head row -------------------------------------------------------------------------------------------------

def test_the_head_moved_back_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    set_head(database, 3)
    assert_caught(store, "head-mismatch")


def test_the_head_moved_forward_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    sql(database, "UPDATE audit_head SET seq = 99 WHERE id = 1")
    assert_caught(store, "truncated", "head-mismatch")


def test_the_head_hash_changed_is_caught(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    sql(database, "UPDATE audit_head SET hash = :h WHERE id = 1", h="f" * 64)
    assert_caught(store, "head-mismatch", at=EVENTS)


def test_the_head_row_deleted_is_reported_not_a_crash(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    sql(database, "DELETE FROM audit_head")
    assert_caught(store, "head-mismatch")


# -- values verify cannot digest ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("column", "value"), [
    ("actor_user", "user:default/a\x00b"), ("detail", "x" * 2_000_000), ("changes", '{"kind": "not a list"}'),
    ("changes", '"[]"'), ("changes", "123"), ("changes", "null"),
])
def test_odd_values_on_both_databases_are_edits_not_crashes(chain: tuple[Database, AuditStore], column: str,
                                                            value: str) -> None:
    database, store = chain
    if "\x00" in value and not is_sqlite(database):
        pytest.skip("PostgreSQL text cannot hold NUL: the DBA cannot write it either")
    sql(database, f"UPDATE audit_events SET {column} = :v WHERE seq = 4", v=value)  # noqa: S608
    assert_caught(store, "edited", at=4)


@pytest.mark.parametrize(("column", "value"), [
    ("hash", b"\x00" * 32), ("at", b"\x01\x02"), ("actor_caller", b"token"), ("prev_hash", b"x"),
    ("key_id", b"file:x"), ("changes", "this is not JSON"), ("changes", b"\xff\xfe"), ("result", 42),
    ("input_digest", 1.5), ("hash", 7),
], ids=["hash-blob", "at-blob", "caller-blob", "prev-blob", "key-blob", "changes-text", "changes-blob", "result-int",
        "digest-real", "hash-int"])
def test_sqlite_values_of_another_type_are_edits_not_crashes(chain: tuple[Database, AuditStore], column: str,
                                                             value: Any) -> None:
    """SQLite keeps whatever the DBA writes (a BLOB in a TEXT column, text that is no JSON in a JSON one)."""
    database, store = chain
    if not is_sqlite(database):
        pytest.skip("PostgreSQL enforces the column types")
    sql(database, f"UPDATE audit_events SET {column} = :v WHERE seq = 4", v=value)  # noqa: S608
    assert_caught(store, "edited", "relinked", "unknown-key", at=4)


@pytest.mark.parametrize("column", ["actor_user", "changes", "hash", "at"])
def test_sqlite_text_that_is_not_utf8_is_an_edit_not_a_crash(chain: tuple[Database, AuditStore], column: str) -> None:
    database, store = chain
    if not is_sqlite(database):
        pytest.skip("PostgreSQL refuses text that is not UTF-8")
    sql(database, f"UPDATE audit_events SET {column} = CAST(X'FFFE41' AS TEXT) WHERE seq = 3")  # noqa: S608
    assert_caught(store, "edited", at=3)
    assert len(store.list()) == EVENTS  # the API's listing reads it too


def test_sqlite_head_values_of_another_type_are_reported(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    if not is_sqlite(database):
        pytest.skip("PostgreSQL enforces the column types")
    sql(database, "UPDATE audit_head SET seq = 'six' WHERE id = 1")
    assert_caught(store, "head-mismatch")


def test_a_huge_changes_list_is_checked_not_a_hang(chain: tuple[Database, AuditStore]) -> None:
    database, store = chain
    huge = [{"kind": "vault.policy", "locator": f"p{n}", "outcome": "created"} for n in range(100_000)]
    sql(database, "UPDATE audit_events SET changes = :v WHERE seq = 5", v=_json(huge))
    assert_caught(store, "edited", at=5)


def test_a_legacy_event_edited_with_recomputed_hashes_and_no_keyed_successor_needs_the_witness(
        database_url: str, tmp_path: Path) -> None:
    """Stays true and documented: legacy events after the last checkpoint are as good as their SHA-256 chain."""
    database, store = audit_store(database_url, tmp_path)
    insert_legacy(database, 2)
    sql(database, "UPDATE audit_events SET actor_user = 'user:default/mallory' WHERE seq = 2")
    rechain(database, start=2, mac=plain_sha256, legacy=True)
    result = verify(store)
    assert result.ok and result.legacy == 2  # nothing outside the database ever saw them
    database.dispose()


# -- a chain keyed by Vault/OpenBao transit: what the DBA writes must not turn "tampered" into "cannot check" ------

@pytest.fixture
def transit_chain(openbao: EmbeddedOpenBao, sqlite_url: str,
                  tmp_path: Path) -> Iterator[tuple[Database, AuditStore, str]]:
    client = hvac.Client(url=openbao.addr, token=openbao.token)
    mount = f"transit-{secrets.token_hex(4)}"
    client.sys.enable_secrets_engine("transit", path=mount)
    client.secrets.transit.create_key("audit", mount_point=mount)
    database = Database(sqlite_url)
    database.migrate()
    store = AuditStore(database, key=TransitAuditKey(addr=openbao.addr, token=openbao.token, mount=mount,
                                                     key="audit"), witness=FileWitness(tmp_path / "witness.jsonl"))
    for n in range(3):
        store.append(new_event(n))
    assert verify(store).ok
    yield database, store, mount
    database.dispose()
    client.sys.disable_secrets_engine(mount)


@pytest.mark.parametrize(("column", "value"), [
    ("key_id", "transit:{mount}/audit:v2"), ("key_id", "transit:{mount}/audit:v" + "9" * 40),
    ("key_id", "transit:{mount}/audit:v1:v1"), ("key_id", "transit:{mount}/other:v1"),
    ("key_id", "transit:{mount}/../audit:v1"), ("hash", ""), ("hash", "ab" * 50_000), ("hash", "zz" * 32),
    ("hash", "AB" * 32),
])
def test_transit_key_ids_and_macs_a_dba_writes_are_tampering(transit_chain: tuple[Database, AuditStore, str],
                                                             column: str, value: str) -> None:
    database, store, mount = transit_chain
    sql(database, f"UPDATE audit_events SET {column} = :v WHERE seq = 2", v=value.format(mount=mount))  # noqa: S608
    assert_caught(store, "edited", "unknown-key", "rewritten", at=2)
