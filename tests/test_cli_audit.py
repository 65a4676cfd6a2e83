"""`goldenpath audit verify` as an operator runs it: exit 0 with counts when intact, exit 1 naming the event and
what was done to it when a database administrator tampered."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.audit_chains import audit_store, new_event
from tests.test_cli import _cli


def _chain(tmp_path: Path, events: int) -> tuple[Path, dict[str, str]]:
    db = tmp_path / "cli.db"
    database, store = audit_store(f"sqlite:///{db}", tmp_path, key_file="audit.key", witness_file="witness.jsonl")
    for n in range(events):
        store.append(new_event(n))
    database.dispose()
    return db, {"GOLDENPATH_DATABASE_URL": f"sqlite:///{db}",
                "GOLDENPATH_AUDIT__KEY_FILE": str(tmp_path / "audit.key"),
                "GOLDENPATH_AUDIT__WITNESS_FILE": str(tmp_path / "witness.jsonl")}


def test_verify_counts_an_intact_chain_and_names_an_edited_event(tmp_path: Path) -> None:
    db, env = _chain(tmp_path, 3)
    intact = _cli("audit", "verify", env=env)
    assert intact.stdout.strip() == "audit chain intact: 3 events; witness: 3 checkpoints, the latest of event 3"

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_events SET actor_user = 'user:default/mallory' WHERE seq = 2")
    broken = _cli("audit", "verify", env=env, check=False)
    assert broken.returncode == 1
    assert broken.stderr.strip() == ("audit chain broken at event 2 (edited): content does not match its MAC "
                                     "(1 events verified before it)")


def test_verify_names_a_cut_tail_that_the_database_hides(tmp_path: Path) -> None:
    db, env = _chain(tmp_path, 4)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq > 2")
        conn.execute("UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_events WHERE seq = 2)")
    broken = _cli("audit", "verify", env=env, check=False)
    assert broken.returncode == 1
    assert "at event 3 (truncated): the chain ends at 2 but the witness saw 4 — events were cut" in broken.stderr


def test_checkpoint_witnesses_the_head_now(tmp_path: Path) -> None:
    _, env = _chain(tmp_path, 2)
    assert _cli("audit", "checkpoint", env=env).stdout.startswith("witnessed event 2 (")
    assert "3 checkpoints, the latest of event 2" in _cli("audit", "verify", env=env).stdout


def test_a_damaged_key_file_exits_2_without_a_verdict(tmp_path: Path) -> None:
    _, env = _chain(tmp_path, 1)
    (tmp_path / "audit.key").write_text("not a key\n")
    result = _cli("audit", "verify", env=env, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"audit chain not verified: the audit key file {tmp_path / 'audit.key'} "
                                     "does not hold 32 bytes as hex")
