"""Real databases for tests: SQLite files, and PostgreSQL (the machine's server, else the pgserver wheel)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

from backend.embedded import free_port

SYSTEM_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresServer:
    def __init__(self) -> None:
        self.admin_url = ""
        self.source = ""
        self._workdir: str | None = None
        self._bin: Path | None = None

    def start(self) -> PostgresServer:
        url = os.environ.get("GOLDENPATH_TEST_POSTGRES_URL", SYSTEM_POSTGRES)
        try:
            with psycopg.connect(url, connect_timeout=3):
                pass
            self.admin_url, self.source = url, f"PostgreSQL server at {url.split('@')[-1]}"
            return self
        except psycopg.OperationalError:
            return self._start_pgserver()

    def _start_pgserver(self) -> PostgresServer:
        # Only the binaries the wheel ships are needed: find them without importing the package, whose
        # import-time platformdirs lookup warns (an error under this suite's filterwarnings).
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("no PostgreSQL at 127.0.0.1:5432 and the pgserver wheel is not installed")
        self._bin = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        self._workdir = tempfile.mkdtemp(prefix="goldenpath-pg-")
        port = free_port()
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        if as_user:
            os.chown(self._workdir, 65534, 65534)
        data = f"{self._workdir}/data"
        subprocess.run([*as_user, str(self._bin / "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-locale"], check=True, capture_output=True)
        subprocess.run([*as_user, str(self._bin / "pg_ctl"), "-D", data, "-l", f"{self._workdir}/log", "-o",
                        f"-h 127.0.0.1 -p {port} -k {self._workdir} -c fsync=off", "-w", "start"],
                       check=True, capture_output=True)
        self._as_user = as_user
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.source = "PostgreSQL 16 from the pgserver wheel (no server at 127.0.0.1:5432)"
        return self

    def create_database(self) -> str:
        name = f"goldenpath_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._workdir and self._bin:
            subprocess.run([*self._as_user, str(self._bin / "pg_ctl"), "-D", f"{self._workdir}/data", "-m", "fast",
                            "-w", "stop"], check=False, capture_output=True)
            shutil.rmtree(self._workdir, ignore_errors=True)
