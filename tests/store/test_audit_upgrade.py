"""Upgrading a database whose audit chain predates keyed chaining: its events stay valid as a legacy prefix."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from backend.services.audit import verify
from backend.store.database import MIGRATIONS_DIR, Database
from tests.audit_chains import audit_store, new_event, rows

GENESIS = "0" * 64


def _migrate_to(database: Database, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _old_event(seq: int, prev_hash: str) -> dict[str, object]:
    """An event exactly as the code of revision 0003 wrote it: plain SHA-256 over these fields."""
    values: dict[str, object] = {
        "seq": seq, "id": str(uuid.uuid4()), "at": f"2026-01-0{seq}T00:00:00.000000Z", "actor_user": "user:default/a",
        "actor_caller": "token:ci", "action_id": "goldenpath:x:y:z", "run_id": None, "input_digest": "0" * 64,
        "changes": [], "result": "succeeded", "detail": None, "prev_hash": prev_hash,
    }
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return {**values, "hash": hashlib.sha256(canonical.encode()).hexdigest()}


def test_a_pre_keyed_chain_upgrades_and_stays_valid(database_url: str, tmp_path: Path) -> None:
    database = Database(database_url)
    _migrate_to(database, "0003")
    previous = GENESIS
    with database.engine.begin() as connection:
        for seq in (1, 2):
            event = _old_event(seq, previous)
            connection.execute(text(
                "INSERT INTO audit_events (seq, id, at, actor_user, actor_caller, action_id, run_id, input_digest,"
                " changes, result, detail, prev_hash, hash) VALUES (:seq, :id, :at, :actor_user, :actor_caller,"
                " :action_id, :run_id, :input_digest, :changes, :result, :detail, :prev_hash, :hash)"),
                {**event, "changes": "[]"})
            previous = str(event["hash"])
        connection.execute(text("UPDATE audit_head SET seq = 2, hash = :hash WHERE id = 1"), {"hash": previous})
    database.dispose()

    upgraded, store = audit_store(database_url, tmp_path)  # migrates to head
    store.append(new_event(3))
    assert [(r["key_id"], r["actor_claim"]) for r in rows(upgraded)] == [
        (None, None), (None, None), (store.key.key_id, None)]
    result = verify(store)
    assert (result.ok, result.checked, result.legacy, result.witnessed_seq) == (True, 3, 2, 3)
    upgraded.dispose()
