"""The goldenpath command as a user runs it: actions list, run (dry and real), audit verify and export."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from backend.embedded import EmbeddedOpenBao
from tests.conftest import VAULT_ACTION, vault_input

ROOT = Path(__file__).parent.parent


def _cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, check=check)


def test_run_dry_run_then_real_then_audit(tmp_path: Path, openbao: EmbeddedOpenBao) -> None:
    db = tmp_path / "cli.db"
    env = {"GOLDENPATH_DATABASE_URL": f"sqlite:///{db}", "VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.token,
           "GOLDENPATH_VAULT__ENABLE_KUBERNETES_AUTH": "true",
           "GOLDENPATH_AUDIT__KEY_FILE": str(tmp_path / "audit.key"),
           "GOLDENPATH_AUDIT__WITNESS_FILE": str(tmp_path / "witness.jsonl")}
    assert VAULT_ACTION in _cli("actions", "list", env=env).stdout  # needs no database
    input_file = tmp_path / "input.yaml"
    input_file.write_text(json.dumps(vault_input()))
    empty = _cli("run", VAULT_ACTION, "--input", str(input_file), env=env, check=False)  # never migrates
    assert empty.returncode == 2 and "run `goldenpath db upgrade`" in empty.stderr
    assert _cli("db", "status", env=env, check=False).returncode == 1
    assert "-> " in _cli("db", "upgrade", env=env).stdout
    assert "already current" in _cli("db", "upgrade", env=env).stdout
    assert _cli("db", "status", env=env).returncode == 0

    planned = json.loads(_cli("run", VAULT_ACTION, "--input", str(input_file), "--dry-run", env=env).stdout)
    assert planned["dryRun"] is True and any(c["outcome"] == "created" for c in planned["changes"])
    done = json.loads(_cli("run", VAULT_ACTION, "--input", str(input_file), env=env).stdout)
    assert done["status"] == "succeeded" and done["output"]["changed"] is True
    again = json.loads(_cli("run", VAULT_ACTION, "--input", str(input_file), env=env).stdout)
    assert again["output"]["changed"] is False

    assert _cli("audit", "verify", env=env).stdout.startswith("audit chain intact: 2 events;")
    exported = [json.loads(line) for line in _cli("audit", "export", env=env).stdout.splitlines()]
    assert [e["result"] for e in exported] == ["succeeded", "succeeded"]
    assert exported[0]["actor_caller"] == "cli" and exported[0]["actor_user"] is None  # the OS login is a claim
    assert exported[0]["actor_claim"].startswith("user:default/")

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_events SET result = 'failed' WHERE seq = 2")
    broken = _cli("audit", "verify", env=env, check=False)
    assert broken.returncode == 1 and "broken at event 2" in broken.stderr


def test_bad_input_exits_1_with_a_problem(tmp_path: Path) -> None:
    env = {"GOLDENPATH_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
           "GOLDENPATH_AUDIT__KEY_FILE": str(tmp_path / "audit.key"),
           "GOLDENPATH_AUDIT__WITNESS_FILE": str(tmp_path / "witness.jsonl")}
    _cli("db", "upgrade", env=env)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"service": "Not_OK"}))
    result = _cli("run", VAULT_ACTION, "--input", str(bad), env=env, check=False)
    assert result.returncode == 1
    problem = json.loads(result.stderr)
    assert "service" in [e["field"] for e in problem["errors"]]
