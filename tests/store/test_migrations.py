"""The alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from backend.store.database import MIGRATIONS_DIR, Database
from backend.store.models import Base


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    database.dispose()
    assert differences == []


def test_migrating_twice_is_harmless(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    database.migrate()
    with database.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert current == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert current is not None and int(current) >= 4
    database.dispose()


def test_concurrent_upgrades_take_turns(database_url: str) -> None:
    """Replicas (or a Job and a container start) upgrading one fresh database at once: each waits for the lock,
    the first migrates, the others find it current; none fails half-way."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDENPATH_", "VAULT_"))}
    env["GOLDENPATH_DATABASE_URL"] = database_url
    upgraders = [subprocess.Popen([sys.executable, "-m", "backend.cli", "db", "upgrade"], cwd=root, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [upgrader.communicate(timeout=120) for upgrader in upgraders]
    assert [u.returncode for u in upgraders] == [0, 0, 0], [err[-1500:] for _, err in outputs]
    said = sorted("already current" in out for out, _ in outputs)
    assert said == [False, True, True], outputs  # one migrated, the others waited and found it done
    database = Database(database_url)
    database.require_current()
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    database.dispose()
