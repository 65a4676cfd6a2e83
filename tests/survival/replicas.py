"""N Golden Path replicas as real processes (`goldenpath serve`), each on its own port, sharing one database, one
OpenBao, one local git root, one GitOps remote and one audit key and witness, as replicas behind a load balancer do.

Used by the chaos test and the replica benchmark: `kill(i)` is `kill -9` of the replica's process group (its git
children die with it, as in a container), `restart(i)` starts it again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import yaml

from backend.embedded import EmbeddedOpenBao, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Replica:
    index: int
    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Replicas:
    """Start with `start()` (runs `goldenpath db upgrade` once, then every replica); `stop()` ends them all."""

    workdir: Path
    database_url: str
    openbao: EmbeddedOpenBao
    count: int = 3
    token: str = "chaos-admin-token-0123456789abcdef"  # a test credential, loopback only
    lease_seconds: float = 2.0
    takeover_interval_seconds: float = 0.5
    lock_timeout_seconds: float = 10.0
    log_level: str = "WARNING"
    replicas: list[Replica] = field(default_factory=list)
    start_seconds: float = 0.0  # what start() took: the schema upgrade and every replica ready

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for index in range(self.count):
            port = free_port()
            config = self.workdir / f"replica-{index}.yaml"
            config.write_text(yaml.safe_dump(self.settings(port, index)))
            self.replicas.append(Replica(index, port, config, self.workdir / f"replica-{index}.log"))

    def settings(self, port: int, index: int) -> dict[str, Any]:
        """One replica's settings: everything shared but its port and its GitOps working clone (a pod's own)."""
        shared = self.workdir
        return {
            "server": {"host": "127.0.0.1", "port": port, "log_level": self.log_level},
            "database": {"url": self.database_url},
            "auth": {"token": self.token},
            "vault": {"addr": self.openbao.addr, "token": self.openbao.token, "enable_kubernetes_auth": True},
            "kubernetes": {"clusters": {"local": {"mode": "gitops", "remote": str(shared / "gitops" / "local.git"),
                                                  "workdir": str(shared / "gitops" / f"work-{index}")}}},
            "repositories": {"local_root": str(shared / "git")},
            "audit": {"key_file": str(shared / "audit.key"), "witness_file": str(shared / "audit-witness.jsonl")},
            "runs": {"lease_seconds": self.lease_seconds,
                     "takeover_interval_seconds": self.takeover_interval_seconds,
                     "lock_timeout_seconds": self.lock_timeout_seconds},
        }

    @property
    def config(self) -> Path:
        """A configuration any CLI command (db upgrade, audit verify) may use: the first replica's."""
        return self.replicas[0].config

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDENPATH_", "VAULT_"))}
        return {**env, "PYTHONPATH": str(ROOT)}

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backend.cli", "--config", str(self.config), *args],
                              cwd=self.workdir, env=self.env(), capture_output=True, text=True, timeout=timeout,
                              check=False)

    def upgrade(self) -> None:
        done = self.cli("db", "upgrade")
        if done.returncode != 0:
            raise RuntimeError(f"goldenpath db upgrade failed: {done.stderr[-2000:]}")

    def start(self, *, timeout: float = 60.0) -> Replicas:
        started = time.monotonic()
        self.upgrade()
        for replica in self.replicas:
            self.launch(replica.index)
        for replica in self.replicas:
            self.wait_ready(replica.index, timeout=timeout)
        self.start_seconds = time.monotonic() - started
        return self

    def launch(self, index: int) -> Replica:
        """Start the replica's process (not waiting for it to be ready)."""
        replica = self.replicas[index]
        if replica.alive:
            raise RuntimeError(f"replica {index} is already running")
        with replica.log.open("ab") as log:
            log.write(f"--- start {replica.starts + 1} ---\n".encode())
            log.flush()
            replica.process = subprocess.Popen(
                [sys.executable, "-m", "backend.cli", "--config", str(replica.config), "serve",
                 "--no-embedded-vault"],
                cwd=self.workdir, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        replica.starts += 1
        return replica

    def ready(self, index: int) -> bool:
        replica = self.replicas[index]
        if not replica.alive:
            return False
        try:
            return requests.get(f"{replica.url}/api/v1/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, index: int, *, timeout: float = 60.0) -> None:
        replica = self.replicas[index]
        deadline = time.monotonic() + timeout
        while not self.ready(index):
            if not replica.alive:
                raise RuntimeError(f"replica {index} exited (status {replica.process and replica.process.poll()}); "
                                   f"log: {self.tail(index)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {index} not ready within {timeout} s; log: {self.tail(index)}")
            time.sleep(0.1)

    def kill(self, index: int) -> None:
        """kill -9 the replica and everything it started."""
        replica = self.replicas[index]
        if replica.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGKILL)
        replica.process.wait()
        replica.kills += 1

    def restart(self, index: int, *, wait: bool = True, timeout: float = 60.0) -> None:
        self.kill(index)
        self.launch(index)
        if wait:
            self.wait_ready(index, timeout=timeout)

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.alive and replica.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(replica.process.pid, signal.SIGTERM)
        for replica in self.replicas:
            if replica.process is None:
                continue
            try:
                replica.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(replica.process.pid, signal.SIGKILL)
                replica.process.wait()

    def tail(self, index: int, chars: int = 3000) -> str:
        log = self.replicas[index].log
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def __enter__(self) -> Replicas:
        return self.start()

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
