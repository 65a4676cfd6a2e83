"""Locks that serialize work across replicas and worker processes, and die with their holder.

PostgreSQL: a session advisory lock on a connection held for the lock's life (a killed process drops its
connection, and PostgreSQL releases the lock). SQLite (one host): an flock on a file beside the database (the
kernel releases it when the process dies; separate opens conflict, so threads are serialized too).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url


class LockTimeout(Exception):
    """The lock stayed held by another run for the whole wait."""


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name` (collisions only over-serialize, never under)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Locks:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        url = make_url(str(engine.url))
        self._postgres = url.get_backend_name() == "postgresql"
        database = url.database if not self._postgres else None
        in_memory = not database or database == ":memory:"
        # an in-memory database lives in one process: so may its locks
        self._dir = (Path(database).resolve().parent / ".locks" if not in_memory and database
                     else Path(tempfile.mkdtemp(prefix="goldenpath-locks-")))

    @contextmanager
    def hold(self, name: str, *, timeout: float) -> Iterator[None]:
        """Hold the lock called `name`; LockTimeout after `timeout` seconds of waiting."""
        if self._postgres:
            with self._advisory(name, timeout):
                yield
        else:
            with self._flock(name, timeout):
                yield

    @contextmanager
    def _advisory(self, name: str, timeout: float) -> Iterator[None]:
        key = lock_key(name)
        with self._engine.connect() as connection:
            _wait(lambda: bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()),
                  timeout, name)
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()

    @contextmanager
    def _flock(self, name: str, timeout: float) -> Iterator[None]:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._dir / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            def take() -> bool:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    return False

            _wait(take, timeout, name)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _wait(take: Callable[[], bool], timeout: float, name: str) -> None:
    deadline, delay = time.monotonic() + timeout, 0.005
    while not take():
        if time.monotonic() >= deadline:
            raise LockTimeout(name)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
