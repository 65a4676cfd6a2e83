"""Engine and sessions for SQLite (default) and PostgreSQL; schema upgrades (`goldenpath db upgrade`) under a lock.

Serving never migrates: many workers starting at once would race. It checks the schema is current instead, and
says how to upgrade when it is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
UPGRADE_LOCK = "goldenpath:schema-upgrade"
UPGRADE_LOCK_TIMEOUT = 600.0


class SchemaNotCurrent(Exception):
    """The database's schema is not the one this version needs; the message says what to do."""


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, joined: Session | None = None) -> Iterator[Session]:
        """A new transaction, or `joined` when the caller already holds one (so several stores commit as one)."""
        if joined is not None:
            yield joined
            return
        with self._sessions() as session, session.begin():
            yield session

    def migrate(self) -> tuple[str | None, str | None]:
        """Upgrade the schema to this version's head, one upgrader at a time (others wait, then find it done);
        returns the revisions before and after, as this upgrader found and left them."""
        from backend.store.locks import Locks  # locks build on the engine; imported here to keep the cycle out

        with Locks(self.engine).hold(UPGRADE_LOCK, timeout=UPGRADE_LOCK_TIMEOUT):
            before = self.schema_revision()
            config = _alembic_config()
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return before, self.schema_revision()

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def require_current(self) -> None:
        """SchemaNotCurrent unless the schema is exactly this version's."""
        current, head = self.schema_revision(), head_revision()
        if current == head:
            return
        known = {script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
        if current is not None and current not in known:
            raise SchemaNotCurrent(f"the database schema ({current}) is newer than this version of Golden Path "
                                   f"understands ({head}): run the newer version, or restore a matching backup")
        raise SchemaNotCurrent(f"the database schema is at {current or 'nothing (empty database)'}, this version "
                               f"needs {head}: run `goldenpath db upgrade` once (make run, the container's start "
                               "and the Kubernetes migration Job do), then start again")

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    _serialize_sqlite_writers(engine)
    return engine


def _serialize_sqlite_writers(engine: Engine) -> None:
    """pysqlite's deferred transactions let two writers read the same audit head and then
    deadlock on upgrade; BEGIN IMMEDIATE takes the write lock up front (WAL keeps readers free)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # SQLite stores whatever bytes it is given as TEXT; a row with invalid UTF-8 (written by hand) must read
        # as text that is visibly wrong, not stop every query that touches it
        dbapi_connection.text_factory = _lenient_text
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
