"""The alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

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
