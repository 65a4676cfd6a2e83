"""Runs survive their replica: a run killed mid-way (after its backend writes, before its record) is finished by
the retry that carries its key or by any replica's sweep, and the audit names every object it created.

Real processes are killed with SIGKILL (GOLDENPATH_CRASHPOINTS), on SQLite and PostgreSQL, against real OpenBao.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml
from sqlalchemy import text

from backend.app import Services, build_services
from backend.embedded import EmbeddedOpenBao
from backend.errors import BusyError
from backend.services.audit import verify
from backend.services.runner import RunRequest
from backend.settings import load_settings
from backend.store.runs import Lease, LeaseLost, NewRun
from tests.conftest import VAULT_ACTION, unique, vault_input
from tests.survival.actions import ALICE, SECRET_ACTION, registry

ROOT = Path(__file__).resolve().parents[2]
LEASE = 1.0


@pytest.fixture
def config(tmp_path: Path, database_url: str, openbao: EmbeddedOpenBao) -> Path:
    path = tmp_path / "goldenpath.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": database_url},
        "vault": {"addr": openbao.addr, "token": openbao.token, "enable_kubernetes_auth": True},
        "audit": {"key_file": str(tmp_path / "audit.key"), "witness_file": str(tmp_path / "witness.jsonl")},
        "repositories": {"local_root": str(tmp_path / "git")},
        "runs": {"lease_seconds": LEASE, "takeover_interval_seconds": 0, "lock_timeout_seconds": 1},
    }))
    return path


@pytest.fixture
def services(config: Path) -> Services:
    return build_services(load_settings(str(config)), registry=registry(), upgrade_schema=True)


def crash(config: Path, action: str, data: dict[str, Any], key: str | None = None,
          point: str = "run.before-record") -> None:
    """Run the request in a replica that is SIGKILLed at `point`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDENPATH_", "VAULT_"))}
    result = subprocess.run([sys.executable, "-m", "tests.survival.child", str(config), action, json.dumps(data),
                             *([key] if key else [])], check=False, cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env={**env, "GOLDENPATH_CRASHPOINTS": point})
    assert result.returncode == -9, result.stderr[-2000:]


def only_run(services: Services) -> dict[str, Any]:
    (row,) = services.stores.runs.list()
    return services.stores.runs.get(row["id"]) or {}


def lapse() -> None:
    time.sleep(LEASE + 0.3)


def audit_changes(services: Services, run_id: str) -> list[dict[str, Any]]:
    events = [e for e in services.stores.audit.list(limit=1000) if e["run_id"] == run_id]
    assert len(events) == 1, events
    return list(events[0]["changes"])


def written_ahead(services: Services, run_id: str) -> set[tuple[str, str]]:
    return {(i["kind"], i["locator"]) for i in services.stores.runs.intents(run_id) if i["attempt"] == 1}


def test_a_retry_with_the_key_takes_over_a_run_whose_replica_died(config: Path, services: Services,
                                                                   openbao: EmbeddedOpenBao) -> None:
    data = vault_input()
    crash(config, VAULT_ACTION, data, key="task-1")
    stuck = only_run(services)
    assert stuck["status"] == "running" and stuck["attempt"] == 1
    intended = written_ahead(services, stuck["id"])
    assert {kind for kind, _ in intended} >= {"vault.secret-path", "vault.policy", "vault.kubernetes-role"}
    client = hvac.Client(url=openbao.addr, token=openbao.token)
    assert all(client.sys.read_policy(name) for kind, name in intended if kind == "vault.policy")  # written

    lapse()
    done = services.runner.run(RunRequest(action_id=VAULT_ACTION, input=data, requester=ALICE,
                                          idempotency_key="task-1"))
    assert (done["id"], done["status"], done["attempt"]) == (stuck["id"], "succeeded", 2)
    assert done["output"]["changed"] is False  # everything was in place: attempt 1 made it
    recovered = {(c["kind"], c["locator"]): c for c in audit_changes(services, stuck["id"])}
    assert set(recovered) == intended  # every object attempt 1 created is in the audit, under this run
    for change in recovered.values():
        assert change["outcome"] in {"created", "updated"}
        assert change["details"]["attempt"] == 1 and change["details"]["evidence"] == "read back by attempt 2"
    assert verify(services.stores.audit).ok
    replay = services.runner.run(RunRequest(action_id=VAULT_ACTION, input=data, requester=ALICE,
                                            idempotency_key="task-1"))
    assert replay["replayed"] is True and replay["id"] == stuck["id"]


def test_any_replica_finishes_a_run_without_a_key(config: Path, services: Services) -> None:
    crash(config, VAULT_ACTION, vault_input())
    assert only_run(services)["status"] == "running"
    assert services.runner.take_over_lapsed() == 0  # its lease has not lapsed yet
    lapse()
    assert services.runner.take_over_lapsed() == 1
    assert services.runner.take_over_lapsed() == 0  # finished: nothing left to take over
    done = only_run(services)
    assert (done["status"], done["attempt"]) == ("succeeded", 2)
    assert {(c["kind"], c["locator"]) for c in audit_changes(services, done["id"])} == written_ahead(services,
                                                                                                       done["id"])
    assert any("took it over" in line["message"] for line in done["log"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_run_crashed_before_any_write_is_finished_with_its_own_changes(config: Path, services: Services) -> None:
    crash(config, VAULT_ACTION, vault_input(), key="early", point="run.start")
    stuck = only_run(services)
    assert services.stores.runs.intents(stuck["id"]) == []
    lapse()
    services.runner.take_over_lapsed()
    changes = audit_changes(services, stuck["id"])
    assert changes and all("attempt" not in c.get("details", {}) for c in changes)  # attempt 2 made them
    assert {c["outcome"] for c in changes} == {"created"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_run_the_database_administrator_edited_is_not_run_again(config: Path, services: Services,
                                                                   database_url: str,
                                                                   openbao: EmbeddedOpenBao) -> None:
    crash(config, VAULT_ACTION, vault_input(), point="run.start")
    stuck = only_run(services)
    forged = {**stuck["input"], "service": "stolen-service"}
    with services.database.engine.begin() as connection:  # point the accepted run at another service
        connection.execute(text("UPDATE runs SET input = :input WHERE id = :id"),
                           {"input": json.dumps(forged), "id": stuck["id"]})
    lapse()
    assert services.runner.take_over_lapsed() == 1
    closed = only_run(services)
    assert closed["status"] == "failed" and "no valid seal" in closed["error"]["detail"]
    assert closed["error"]["type"].endswith("/interrupted")
    client = hvac.Client(url=openbao.addr, token=openbao.token)
    assert not [p for p in client.sys.list_policies()["data"]["policies"] if "stolen-service" in p]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_run_the_database_administrator_wrote_is_never_run(services: Services) -> None:
    new = NewRun(id="00000000-0000-0000-0000-000000000001", action_id=VAULT_ACTION, dry_run=False,
                 input=vault_input(service="planted"), input_digest="0" * 64, idempotency_key=None,
                 requested_by=None, caller="goldenpath", context={},
                 requester={"user": None, "caller": "goldenpath", "groups": [], "admin": True},
                 seal="f" * 64, seal_key_id=services.stores.audit.key.key_id)
    services.stores.runs.create(new)  # no lease: as if left by an older version
    assert services.runner.take_over_lapsed() == 1
    assert services.stores.runs.get(new.id)["status"] == "failed"  # type: ignore[index]
    assert services.stores.inventory.list(service="planted") == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_run_with_secret_input_is_closed_for_its_callers_retry(config: Path, services: Services,
                                                                 openbao: EmbeddedOpenBao) -> None:
    data = {"service": unique(), "owner": "group:default/team-payments", "apiToken": "s3cr3t-t0ken-value"}
    crash(config, SECRET_ACTION, data, key="with-secret")
    stuck = only_run(services)
    assert "s3cr3t-t0ken-value" not in json.dumps(stuck)  # never stored, so no other replica can run it again
    lapse()
    assert services.runner.take_over_lapsed() == 1
    closed = services.stores.runs.get(stuck["id"]) or {}
    assert closed["status"] == "failed" and closed["error"]["retryable"] is True
    assert "secrets only its caller had" in closed["error"]["detail"]
    (unknown,) = audit_changes(services, stuck["id"])  # the write it began is evidence, marked unconfirmed
    assert unknown["outcome"] == "unknown" and unknown["details"]["intended"] == "created"
    retried = services.runner.run(RunRequest(action_id=SECRET_ACTION, input=data, requester=ALICE,
                                             idempotency_key="with-secret"))  # the key was released
    assert retried["status"] == "succeeded" and retried["id"] != stuck["id"]


def test_a_replica_that_lost_its_lease_cannot_record_an_outcome(services: Services) -> None:
    runs = services.stores.runs
    new = NewRun(id="00000000-0000-0000-0000-000000000002", action_id=VAULT_ACTION, dry_run=False, input={},
                 input_digest="0" * 64, idempotency_key=None, requested_by=None, caller="t", context={})
    runs.create(new, holder="replica-a", lease_seconds=0.2)
    time.sleep(0.4)
    taken = runs.take_over(new.id, holder="replica-b", seconds=30)
    assert taken == Lease(new.id, "replica-b", 2)
    assert runs.take_over(new.id, holder="replica-c", seconds=30) is None  # one replica wins
    assert runs.renew([Lease(new.id, "replica-a", 1)], seconds=30) == {new.id}
    with pytest.raises(LeaseLost):
        runs.finish(new.id, status="succeeded", output={}, error=None, changes=[], logs=[],
                    lease=Lease(new.id, "replica-a", 1))
    runs.finish(new.id, status="succeeded", output={}, error=None, changes=[], logs=[], lease=taken)
    assert (runs.get(new.id) or {})["status"] == "succeeded"


def test_a_renewed_lease_is_never_taken_over(services: Services) -> None:
    runs = services.stores.runs
    new = NewRun(id="00000000-0000-0000-0000-000000000003", action_id=VAULT_ACTION, dry_run=False, input={},
                 input_digest="0" * 64, idempotency_key=None, requested_by=None, caller="t", context={})
    runner = services.runner
    runs.create(new, holder=runner.holder, lease_seconds=LEASE)
    keeper = runner.leases  # the replica's own renewal, running as it does during a run
    with keeper.holding(Lease(new.id, runner.holder, 1)):
        deadline = time.monotonic() + 3 * LEASE
        while time.monotonic() < deadline:
            assert runs.take_over(new.id, holder="another", seconds=30) is None
            time.sleep(0.1)


def test_the_same_service_waits_for_the_run_holding_it(services: Services, database_url: str,
                                                       tmp_path: Path) -> None:
    busy = unique()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from backend.store.database import Database; from backend.store.locks import Locks\n"
        f"locks = Locks(Database({database_url!r}).engine)\n"
        f"with locks.hold('service:{busy}', timeout=5):\n"
        "    print('held', flush=True); time.sleep(60)\n")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError) as refused:
            services.runner.run(RunRequest(action_id=VAULT_ACTION, input=vault_input(service=busy),
                                           requester=ALICE))
        assert refused.value.retryable and refused.value.status == 409
        holder.kill()  # a dead holder's lock is released by the kernel or by PostgreSQL at once
        holder.wait()
        done = services.runner.run(RunRequest(action_id=VAULT_ACTION, input=vault_input(service=busy),
                                              requester=ALICE))
        assert done["status"] == "succeeded"
    finally:
        holder.kill()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_path_a_dead_attempt_began_and_the_next_finished_is_audited_as_created(config: Path,
                                                                                 services: Services) -> None:
    """Found by the chaos test: attempt 1 wrote a secrets path's metadata and died (SIGKILL) before its keys;
    attempt 2 found the path half made and wrote the keys (`updated`). The audit still says the run created it."""
    data = vault_input()
    crash(config, VAULT_ACTION, data, point="vault.after-metadata")
    lapse()
    assert services.runner.take_over_lapsed() == 1
    run = only_run(services)
    assert (run["status"], run["attempt"]) == ("succeeded", 2)
    path = f"secret/dev/{data['system']}/{data['service']}"
    outcomes = [c["outcome"] for c in audit_changes(services, run["id"]) if c["locator"] == path]
    assert "created" in outcomes


def test_an_object_another_run_made_after_a_dead_attempts_intent_is_audited_once(config: Path,
                                                                                 services: Services) -> None:
    """Found by the chaos test: attempt 1 wrote ahead that it would create a policy and died (SIGKILL) before the
    write; the client's retry (no key: a new run) created it; the sweep then finished run 1 and found it in place.
    Only the run that made an object is named as its creator: every object has one `created` in the audit."""
    data = vault_input()
    crash(config, VAULT_ACTION, data, point="after-intent:vault.policy")
    retry = services.runner.run(RunRequest(action_id=VAULT_ACTION, input=data, requester=ALICE))
    lapse()
    assert services.runner.take_over_lapsed() == 1
    creators: dict[tuple[str, str], list[str]] = {}
    for event in services.stores.audit.list(limit=1000):
        for change in event["changes"]:
            if change["outcome"] == "created":
                creators.setdefault((change["kind"], change["locator"]), []).append(event["run_id"])
    policies = {key: runs for key, runs in creators.items() if key[0] == "vault.policy"}
    assert policies and all(runs == [retry["id"]] for runs in policies.values()), policies
    assert all(len(runs) == 1 for runs in creators.values()), creators
