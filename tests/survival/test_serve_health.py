"""`goldenpath serve` tells the truth about its backends: when the embedded OpenBao dies, readiness fails (and
says which), liveness holds, runs answer a retryable 503, and the server log says what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from backend.embedded import free_port
from tests.conftest import VAULT_ACTION, vault_input

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t" * 40


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait(predicate: object, timeout: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_readyz_fails_when_the_embedded_openbao_dies(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "goldenpath.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": port}, "database": {"url": f"sqlite:///{tmp_path}/gp.db"}, "auth": {"token": TOKEN},
        "audit": {"key_file": str(tmp_path / "k"), "witness_file": str(tmp_path / "w")},
        "repositories": {"local_root": str(tmp_path / "git")},
        "kubernetes": {"clusters": {"local": {"mode": "gitops", "remote": str(tmp_path / "gitops.git")}}},
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDENPATH_", "VAULT_"))}
    cli = [sys.executable, "-m", "backend.cli", "--config", str(config)]
    subprocess.run([*cli, "db", "upgrade"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, check=True,
                   capture_output=True)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen([*cli, "serve"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, stdout=out,
                                  stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        _wait(lambda: _get(f"{base}/readyz") == 200)
        (bao,) = [pid for pid in _children(server.pid) if "bao" in Path(f"/proc/{pid}/cmdline").read_text()]
        os.kill(bao, signal.SIGKILL)
        _wait(lambda: _get(f"{base}/readyz") == 503, timeout=15)
        body = requests.get(f"{base}/readyz", timeout=5).json()
        assert body["checks"]["database"] == "ok" and body["checks"]["vault"] != "ok"
        assert _get(f"{base}/healthz") == 200  # alive: a restart is the operator's call, not a probe's
        run = requests.post(f"{base}/actions/{VAULT_ACTION}/runs", json={"input": vault_input()},
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert run.status_code == 503 and run.json()["retryable"] is True
        _wait(lambda: b"the embedded OpenBao exited" in log.read_bytes(), timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=20)


def _get(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.ConnectionError:
        return 0
