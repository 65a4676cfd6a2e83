"""Attacks on run survival (leases, take-over, sealed records, write-ahead intents, the service lock, migrations).

Adversaries: a hostile database administrator (edits, copies, replays and forges rows, but has neither the audit
key nor Vault), another Backstage user or team, crashes at the worst instants (SIGKILL in child processes, or an
in-process "replica death": a BaseException that unwinds the run without recording it, exactly what the database
sees of a kill), stalls longer than a lease, and replicas whose clocks disagree. Real OpenBao, real SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import yaml
from alembic import command
from sqlalchemy import delete, insert, select, text, update

import backend.services.runner as runner_module
import backend.store.clock as clock_module
from backend.app import Services, build_services
from backend.embedded import EmbeddedOpenBao
from backend.errors import BusyError, ConflictError, NotAllowedError
from backend.plugin_api import Requester
from backend.services.audit import verify
from backend.services.runner import RunRequest
from backend.settings import settings_from_dict
from backend.store.database import Database, SchemaNotCurrent, _alembic_config, head_revision
from backend.store.models import Run, RunIntent
from tests.adversarial.survival_helpers import (
    CALLER_SECRETS_ACTION,
    SLOW_ACTION,
    TRACE,
    entered,
    gate,
    paths,
    registry,
)
from tests.conftest import VAULT_ACTION, unique, vault_input
from tests.survival.actions import ALICE, SECRET_ACTION

ROOT = Path(__file__).resolve().parents[2]
LEASE = 1.0
PAYMENTS, LEDGER, PLATFORM = "group:default/team-payments", "group:default/team-ledger", "group:default/platform"
BOB = Requester(user="user:default/bob", caller="token:ci", groups=frozenset({PAYMENTS}))
MALLORY = Requester(user="user:default/mallory", caller="token:ci", groups=frozenset({LEDGER}))
PAT = Requester(user="user:default/pat", caller="token:ci", groups=frozenset({PLATFORM}), admin=True)


class ReplicaDied(BaseException):
    """Unwinds a run without recording it, as a kill does: the row stays `running`, its lease stops being renewed,
    its locks are released (a killed process's are, by the kernel or by PostgreSQL)."""


# -- a fleet of replicas on one database, one audit key, one OpenBao -----------------------------------------------

@dataclass
class Fleet:
    tmp: Path
    url: str
    bao: EmbeddedOpenBao
    built: list[Services] = field(default_factory=list)

    def raw(self, **runs: Any) -> dict[str, Any]:
        return {
            "database": {"url": self.url},
            "vault": {"addr": self.bao.addr, "token": self.bao.token, "enable_kubernetes_auth": True},
            "audit": {"key_file": str(self.tmp / "audit.key"), "witness_file": str(self.tmp / "witness.jsonl")},
            "repositories": {"local_root": str(self.tmp / "git")},
            "runs": {"lease_seconds": LEASE, "takeover_interval_seconds": 0, "lock_timeout_seconds": 1, **runs},
        }

    def replica(self, **runs: Any) -> Services:
        services = build_services(settings_from_dict(self.raw(**runs)), registry=registry(), upgrade_schema=True)
        self.built.append(services)
        return services

    def config_file(self) -> Path:
        path = self.tmp / "goldenpath.yaml"
        path.write_text(yaml.safe_dump(self.raw()))
        return path


@pytest.fixture
def fleet(tmp_path: Path, database_url: str, openbao: EmbeddedOpenBao) -> Iterator[Fleet]:
    made = Fleet(tmp_path, database_url, openbao)
    yield made
    for gate_event in list(_opened):
        gate_event.set()
    for services in made.built:
        services.database.dispose()


_opened: list[threading.Event] = []


@pytest.fixture
def vault(openbao: EmbeddedOpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.token)


def lapse() -> None:
    time.sleep(LEASE + 0.4)


@contextmanager
def dies_at(point: str) -> Iterator[None]:
    """This process's runs die at crash point `point` (backend/crashpoints.py) while the block runs."""
    real = runner_module.crashpoint

    def crash(name: str) -> None:
        if name == point:
            raise ReplicaDied(name)

    runner_module.crashpoint = crash
    try:
        yield
    finally:
        runner_module.crashpoint = real


def running_ids(services: Services) -> set[str]:
    return {r["id"] for r in services.stores.runs.list(limit=10_000, status="running")}


def crashed(services: Services, request: RunRequest, point: str = "run.before-record") -> str:
    """Run `request` on a replica that dies at `point`; the id of the run it left `running`."""
    before = running_ids(services)
    with dies_at(point), pytest.raises(ReplicaDied):
        services.runner.run(request)
    (left,) = running_ids(services) - before
    return left


def record(services: Services, run_id: str) -> dict[str, Any]:
    found = services.stores.runs.get(run_id)
    assert found is not None
    return found


def events(services: Services, run_id: str) -> list[dict[str, Any]]:
    return [e for e in services.stores.audit.list(limit=100_000) if e["run_id"] == run_id]


def dba(services: Services, statement: Any, **params: Any) -> None:
    with services.database.engine.begin() as connection:
        connection.execute(statement if not isinstance(statement, str) else text(statement), params)


def vault_objects(client: hvac.Client, service: str) -> set[str]:
    """What the vault action writes for `service` (environment dev, system payments) and exists now."""
    found = {p for p in client.sys.list_policies()["data"]["policies"] if f".{service}." in p}
    try:
        roles = client.auth.kubernetes.list_roles()["keys"]
    except hvac.exceptions.InvalidPath:
        roles = []
    found |= {f"role:{r}" for r in roles if r.endswith(f".{service}")}
    try:
        client.secrets.kv.v2.read_secret_metadata(f"dev/payments/{service}", mount_point="secret")
        found.add(f"kv:dev/payments/{service}")
    except hvac.exceptions.InvalidPath:
        pass
    return found


def kv_exists(client: hvac.Client, path: str) -> bool:
    try:
        client.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")
        return True
    except hvac.exceptions.InvalidPath:
        return False


def vault_run(service: str, requester: Requester = ALICE, key: str | None = None, **more: Any) -> RunRequest:
    return RunRequest(action_id=VAULT_ACTION, input=vault_input(service=service), requester=requester,
                      idempotency_key=key, **more)


# -- a hostile database administrator ------------------------------------------------------------------------------

def _requester(services: Services, run_id: str) -> dict[str, Any]:
    with services.database.engine.connect() as connection:
        value = connection.execute(select(Run.requester).where(Run.id == run_id)).scalar_one()
    return dict(value)


EDITS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # column -> new value, given the row's requester record
    "requester made admin": lambda r: {"requester": {**r, "admin": True}},
    "requester given a group": lambda r: {"requester": {**r, "groups": sorted({*r["groups"], PLATFORM})}},
    "requester no longer needs its caller": lambda r: {"requester": {**r, "needsCaller": False, "claimedUser": "x"}},
    "context": lambda r: {"context": {"via": "dba", "templateRef": "template:default/evil"}},
    "dry-run flag": lambda r: {"dry_run": True},
    "action id": lambda r: {"action_id": SLOW_ACTION},
    "seal key id": lambda r: {"seal_key_id": "another-key"},
    "requested_by column": lambda r: {"requested_by": PAT.user},
    "caller column": lambda r: {"caller": "token:platform-admin"},
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_dba_edit_to_any_field_of_a_crashed_run_stops_its_take_over(fleet: Fleet, vault: hvac.Client) -> None:
    """Every field a take-over runs with, or names in the audit, is sealed: an edited run is closed, never run,
    and the audit never names an identity the DBA wrote as the actor."""
    a, b = fleet.replica(), fleet.replica()
    control = unique()
    control_id = crashed(a, vault_run(control), point="run.start")
    edited: dict[str, tuple[str, str]] = {}
    for name, edit in EDITS.items():
        service = unique()
        run_id = crashed(a, vault_run(service), point="run.start")
        dba(a, update(Run).where(Run.id == run_id).values(**edit(_requester(a, run_id))))
        edited[name] = (run_id, service)
    lapse()
    assert b.runner.take_over_lapsed(limit=100) == len(EDITS) + 1
    assert record(b, control_id)["status"] == "succeeded"  # the sweep works: only the edits stop it
    for name, (run_id, service) in edited.items():
        closed = record(b, run_id)
        assert closed["status"] == "failed", name
        assert "no valid seal" in closed["error"]["detail"], (name, closed["error"])
        assert vault_objects(vault, service) == set(), name  # nothing was run
        for event in events(b, run_id):
            assert event["result"] == "failed", name
            assert event["actor_user"] != PAT.user and event["actor_caller"] != "token:platform-admin", name
    assert verify(b.stores.audit).ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_sealed_run_copied_under_a_new_id_or_with_a_swapped_seal_is_not_run(fleet: Fleet,
                                                                             vault: hvac.Client) -> None:
    a, b = fleet.replica(), fleet.replica()
    original, left, right = (crashed(a, vault_run(unique()), point="run.start") for _ in range(3))
    copy = "00000000-0000-4000-8000-00000000c0de"
    with a.database.engine.begin() as connection:
        rows = {r.id: r._asdict() for r in connection.execute(select(*Run.__table__.columns))}
        connection.execute(insert(Run).values(**{**rows[original], "id": copy}))
        connection.execute(update(Run).where(Run.id == left).values(seal=rows[right]["seal"]))
        connection.execute(update(Run).where(Run.id == right).values(seal=rows[left]["seal"]))
    lapse()
    assert b.runner.take_over_lapsed(limit=100) == 4
    assert record(b, original)["status"] == "succeeded"
    for run_id in (copy, left, right):
        closed = record(b, run_id)
        assert closed["status"] == "failed" and "no valid seal" in closed["error"]["detail"], run_id
    assert [e["result"] for e in events(b, copy)] == ["failed"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_refused_or_finished_run_flipped_back_to_running_is_never_run_again(fleet: Fleet,
                                                                             vault: hvac.Client) -> None:
    """The seal proves Golden Path accepted the request, not that it may still run it: a refused request (sealed
    with the refused requester) and a finished one (sealed with a requester authorized long ago) are replays."""
    a, b = fleet.replica(), fleet.replica()
    target = unique()
    with pytest.raises(NotAllowedError) as refused:
        a.runner.run(vault_run(target, requester=MALLORY))
    refused_id = refused.value.run_id
    finished = unique()
    done = a.runner.run(vault_run(finished))
    policy = f"goldenpath.dev.payments.{finished}.workload"
    vault.sys.delete_policy(policy)  # the team removed what it no longer wants
    for run_id in (refused_id, done["id"]):
        dba(a, update(Run).where(Run.id == run_id).values(status="running", finished_at=None, lease_until=None,
                                                            error=None, output=None))
    b.runner.take_over_lapsed(limit=100)
    assert vault_objects(vault, target) == set()  # mallory's refused request wrote nothing for payments
    assert policy not in vault.sys.list_policies()["data"]["policies"]  # nothing was re-created
    assert [e["result"] for e in events(b, refused_id)] in (["refused"], ["refused", "failed"])
    assert "succeeded" not in [e["result"] for e in events(b, refused_id)]
    assert next(e["result"] for e in events(b, done["id"])) == "succeeded"
    assert len([e for e in events(b, done["id"]) if e["result"] == "succeeded"]) == 1
    assert verify(b.stores.audit).ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_intents_the_dba_wrote_or_copied_never_enter_the_audit(fleet: Fleet, vault: hvac.Client) -> None:
    """A take-over turns earlier attempts' intents into the audit (`created ... read back`): only intents this
    Golden Path wrote, for this run and attempt, may become evidence."""
    a, b = fleet.replica(), fleet.replica()
    service = unique()
    first = a.runner.run(vault_run(service))  # makes every object, with its own (genuine) intents
    policy = f"goldenpath.dev.payments.{service}.workload"
    run_id = crashed(a, vault_run(service), point="run.start")  # wrote nothing (everything was there)
    assert a.stores.runs.intents(run_id) == []
    with a.database.engine.begin() as connection:
        genuine = [r._asdict() for r in connection.execute(
            select(*RunIntent.__table__.columns).where(RunIntent.run_id == first["id"]))]
        for row in genuine:  # copied from another run
            connection.execute(insert(RunIntent).values(
                {k: (run_id if k == "run_id" else v) for k, v in row.items() if k != "id"}))
        for locator in (policy, "root"):  # written from scratch
            connection.execute(insert(RunIntent).values(run_id=run_id, attempt=1, kind="vault.policy",
                                                        locator=locator, outcome="created",
                                                        at="2024-01-01T00:00:00.000000Z"))
    lapse()
    assert b.runner.take_over_lapsed() == 1
    done = record(b, run_id)
    assert done["status"] == "succeeded"
    (event,) = events(b, run_id)
    claimed = [c for c in [*event["changes"], *done["changes"]] if "attempt" in (c.get("details") or {})]
    assert claimed == [], claimed  # no earlier attempt of this run wrote anything
    assert verify(b.stores.audit).ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_intents_the_dba_deleted_or_hid_make_the_audit_say_less_never_more(fleet: Fleet, vault: hvac.Client) -> None:
    """Deleting a run's intents, or setting its attempt back so the take-over thinks it is the first, cannot be told
    from a run that wrote nothing (a limit of per-row evidence): the audit then omits attempt 1's `created`, but
    claims nothing false, and the inventory still gives every object to the run."""
    a, b = fleet.replica(), fleet.replica()
    deleted, hidden = unique(), unique()
    deleted_id, hidden_id = crashed(a, vault_run(deleted)), crashed(a, vault_run(hidden))
    assert a.stores.runs.intents(deleted_id) and a.stores.runs.intents(hidden_id)
    dba(a, delete(RunIntent).where(RunIntent.run_id == deleted_id))
    dba(a, update(Run).where(Run.id == hidden_id).values(attempt=0))
    lapse()
    assert b.runner.take_over_lapsed() == 2
    for service, run_id in ((deleted, deleted_id), (hidden, hidden_id)):
        (event,) = events(b, run_id)
        assert event["result"] == "succeeded"
        assert all(c["outcome"] != "unknown" and "attempt" not in (c.get("details") or {})
                   for c in event["changes"])
        assert {r["runId"] for r in b.stores.inventory.list(service=service)} == {run_id}


# -- stalls, lease loss and the service lock ---------------------------------------------------------------------

def _start(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["value"] = target()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


def _slow_request(service: str, key: str | None = None) -> RunRequest:
    return RunRequest(action_id=SLOW_ACTION, input={"service": service, "owner": PAYMENTS}, requester=ALICE,
                      idempotency_key=key)


def _attempt(services: Services, run_id: str) -> int:
    return int(record(services, run_id)["attempt"])


def _expire_and_take_over(a: Services, b: Services, run_id: str) -> tuple[threading.Thread, dict[str, Any]]:
    """The DBA sets the live run's lease to the past until replica b's sweep takes it over (a renews it every
    third of the lease, so it may take a few tries)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        dba(a, update(Run).where(Run.id == run_id).values(lease_until="2000-01-01T00:00:00.000000Z"))
        sweep, swept = _start(b.runner.take_over_lapsed)
        while sweep.is_alive() and _attempt(a, run_id) == 1:
            time.sleep(0.02)
        if _attempt(a, run_id) == 2:
            return sweep, swept
        sweep.join()
    raise AssertionError("the sweep never took the run over")


def _slow_run_taken_over(fleet: Fleet, *, b_lock_timeout: float, sweep_first: bool = False) -> dict[str, Any]:
    """Replica a runs the slow action (its first path written, then waiting); the DBA expires its lease and b
    takes it over and waits for the service lock; then a wakes (with `sweep_first`, once b gave up waiting)."""
    a, b = fleet.replica(), fleet.replica(lock_timeout_seconds=b_lock_timeout)
    service, key = unique(), unique("key")
    _opened.append(gate(service))
    first, answer = _start(lambda: a.runner.run(_slow_request(service, key)))
    assert entered(service).wait(10)
    (run_id,) = running_ids(a)
    sweep, swept = _expire_and_take_over(a, b, run_id)
    time.sleep(0.3)  # b holds the run now, and waits for the service lock a still holds
    assert ("enter", service, 2) not in TRACE
    if sweep_first:
        sweep.join(30)
    gate(service).set()
    first.join(30)
    sweep.join(30)
    assert not first.is_alive() and not sweep.is_alive()
    return {"a": a, "b": b, "service": service, "key": key, "run_id": run_id, "answer": answer, "swept": swept}


def test_a_live_run_whose_lease_the_dba_expired_runs_once_at_a_time_and_is_recorded_once(
        fleet: Fleet, vault: hvac.Client) -> None:
    """The stalled attempt and the take-over never write at once (the service lock), only the take-over records
    (the fence), the audit names both paths, and the stalled caller is told to retry for the outcome."""
    seen = _slow_run_taken_over(fleet, b_lock_timeout=15)
    a, service, run_id = seen["a"], seen["service"], seen["run_id"]
    assert isinstance(seen["answer"].get("error"), BusyError), seen["answer"]
    assert seen["answer"]["error"].retryable
    mine = [(event, attempt) for event, svc, attempt in TRACE if svc == service]
    firsts = [i for i, (_, attempt) in enumerate(mine) if attempt == 1]
    seconds = [i for i, (_, attempt) in enumerate(mine) if attempt == 2]
    assert firsts and seconds and max(firsts) < min(seconds), mine  # one at a time
    done = record(a, run_id)
    assert (done["status"], done["attempt"]) == ("succeeded", 2)
    (event,) = events(a, run_id)
    named = {c["locator"] for c in event["changes"] if c["outcome"] in {"created", "updated"}}
    assert {f"secret/{p}" for p in paths(service)} <= named
    replay = a.runner.run(_slow_request(service, seen["key"]))
    assert replay["replayed"] and replay["id"] == run_id and replay["status"] == "succeeded"


def test_a_stalled_run_that_lost_its_lease_writes_nothing_the_audit_does_not_name(fleet: Fleet,
                                                                                vault: hvac.Client) -> None:
    """The take-over gave up waiting for the lock and closed the run; the stalled attempt, waking up, must not
    go on writing (or every write must still be in the audit)."""
    seen = _slow_run_taken_over(fleet, b_lock_timeout=1, sweep_first=True)
    a, service, run_id = seen["a"], seen["service"], seen["run_id"]
    assert isinstance(seen["answer"].get("error"), BusyError)
    closed = record(a, run_id)
    assert closed["status"] == "failed"
    named = {c["locator"] for e in events(a, run_id) for c in e["changes"]}
    for path in paths(service):
        if kv_exists(vault, path):
            assert f"secret/{path}" in named, (path, named)


def test_a_replica_whose_clock_runs_ahead_does_not_take_over_a_live_run(fleet: Fleet,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases are compared on one clock: a replica whose clock is ahead (or the holder's, behind) by more than a
    lease must not see a renewed lease as lapsed."""
    a, b = fleet.replica(), fleet.replica()
    main = threading.current_thread()
    real = datetime

    class Skewed(real):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            skew = timedelta(minutes=30) if threading.current_thread() is main else timedelta(minutes=-30)
            return real.now(tz) + skew

    monkeypatch.setattr(clock_module, "datetime", Skewed)
    service = unique()
    _opened.append(gate(service))
    first, answer = _start(lambda: a.runner.run(_slow_request(service)))  # a: this thread's clock is behind
    assert entered(service).wait(10)
    try:
        for _ in range(4):  # b (the main thread, ahead) sweeps across several renewals
            assert b.runner.take_over_lapsed() == 0
            time.sleep(LEASE / 3)
    finally:
        gate(service).set()
        first.join(30)
    assert answer.get("value", {}).get("status") == "succeeded", answer
    assert answer["value"]["attempt"] == 1


# -- crashes ---------------------------------------------------------------------------------------------------

def test_two_replicas_sweeping_at_once_take_each_run_over_once(fleet: Fleet) -> None:
    a, b, c = fleet.replica(), fleet.replica(), fleet.replica()
    ids = [crashed(a, vault_run(unique())) for _ in range(3)]
    lapse()
    start = threading.Barrier(2)

    def sweep(replica: Services) -> int:
        start.wait()
        return replica.runner.take_over_lapsed()

    (tb, rb), (tc, rc) = _start(lambda: sweep(b)), _start(lambda: sweep(c))
    tb.join(60)
    tc.join(60)
    assert rb["value"] + rc["value"] == 3, (rb, rc)
    for run_id in ids:
        assert (record(a, run_id)["status"], record(a, run_id)["attempt"]) == ("succeeded", 2)
        assert [e["result"] for e in events(a, run_id)] == ["succeeded"]
    assert verify(a.stores.audit).ok


@contextmanager
def dies_after_intents(services: Services, count: int) -> Iterator[None]:
    """This replica dies right after committing its `count`-th intent (before the write it announces)."""
    runs = services.stores.runs
    real, written = runs.intend, [0]

    def intend(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        written[0] += 1
        if written[0] == count:
            raise ReplicaDied("after intent")

    runs.intend = intend  # type: ignore[method-assign]
    try:
        yield
    finally:
        del runs.intend


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_attempts_killed_between_intents_are_all_resolved_by_the_attempt_that_finishes(fleet: Fleet,
                                                                                       vault: hvac.Client) -> None:
    a, b, c = fleet.replica(), fleet.replica(), fleet.replica()
    a.runner.run(vault_run(unique()))  # the Kubernetes auth method exists: the first intents are the service's
    service = unique()
    with dies_after_intents(a, 2), pytest.raises(ReplicaDied):  # wrote the secret path, announced a policy
        a.runner.run(vault_run(service))
    (run_id,) = running_ids(a)
    lapse()
    with dies_after_intents(b, 2), pytest.raises(ReplicaDied):  # attempt 2 wrote a policy, announced the next
        b.runner.take_over_lapsed()
    assert _attempt(a, run_id) == 2
    lapse()
    assert c.runner.take_over_lapsed() == 1
    done = record(c, run_id)
    assert (done["status"], done["attempt"]) == ("succeeded", 3)
    (event,) = events(c, run_id)
    changes = {c_["locator"]: c_ for c_ in event["changes"]}
    existing = vault_objects(vault, service)
    assert len(existing) == 4
    path = f"secret/dev/payments/{service}"
    assert changes[path]["outcome"] == "created" and changes[path]["details"]["attempt"] == 1
    assert changes[path]["details"]["evidence"] == "read back by attempt 3"
    by_attempt = {loc: (ch.get("details") or {}).get("attempt") for loc, ch in changes.items()
                  if ch["outcome"] in {"created", "updated"}}
    workload, owners = (f"goldenpath.dev.payments.{service}.{p}" for p in ("workload", "owners"))
    role = f"auth/kubernetes/role/goldenpath.dev.payments.{service}"
    assert set(by_attempt) == {path, workload, owners, role}, by_attempt  # every object is in the audit
    # attempt 2 wrote the workload policy after attempt 1 announced it: the audit credits the run's first
    # announcement (both attempts are this run's; which one's write landed cannot be read back)
    assert by_attempt[workload] in {1, 2}
    assert by_attempt[owners] is None and by_attempt[role] is None  # attempt 3 made them: its own changes
    assert {i["attempt"] for i in c.stores.runs.intents(run_id)} == {1, 2, 3}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_run_that_kills_every_replica_taking_it_over_is_closed_not_passed_on_for_ever(fleet: Fleet,
                                                                                       vault: hvac.Client) -> None:
    """A poison run (one that kills its replica: an input that exhausts memory, a crashing dependency) must not
    be handed from replica to replica by the sweep for ever: after a few attempts it is closed, retryable."""
    replicas = [fleet.replica() for _ in range(5)]
    service = unique()
    run_id = crashed(replicas[0], vault_run(service))
    deaths = 1
    for replica in replicas[1:]:
        lapse()
        with dies_at("run.before-record"):
            try:
                taken = replica.runner.take_over_lapsed()
            except ReplicaDied:
                deaths += 1
                continue
        assert taken == 1
        break
    closed = record(replicas[0], run_id)
    assert closed["status"] == "failed", (deaths, closed["status"], closed["attempt"])
    assert closed["error"]["retryable"] is True and deaths <= 3, deaths
    (event,) = events(replicas[0], run_id)
    assert {c["outcome"] for c in event["changes"]} == {"unknown"}  # what its attempts began, unconfirmed


def _child(config: Path, action: str, data: dict[str, Any], key: str, point: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDENPATH_", "VAULT_"))}
    result = subprocess.run([sys.executable, "-m", "tests.survival.child", str(config), action, json.dumps(data),
                             key], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**env, "PYTHONPATH": str(ROOT), "GOLDENPATH_CRASHPOINTS": point})
    assert result.returncode == -9, result.stderr[-2000:]


def test_the_replica_taking_over_is_killed_too_and_the_third_attempt_names_what_the_first_made(
        fleet: Fleet, vault: hvac.Client) -> None:
    services = fleet.replica()
    config, data, key = fleet.config_file(), vault_input(), unique("key")
    first = RunRequest(action_id=VAULT_ACTION, input=data, requester=ALICE, idempotency_key=key)
    crashed(fleet.replica(), first)  # attempt 1 wrote everything, and died
    lapse()
    _child(config, VAULT_ACTION, data, key, "run.before-record")  # attempt 2 (the key's retry), SIGKILLed too
    (run_id,) = running_ids(services)
    assert _attempt(services, run_id) == 2
    lapse()
    done = services.runner.run(RunRequest(action_id=VAULT_ACTION, input=data, requester=ALICE,
                                          idempotency_key=key))
    assert (done["id"], done["status"], done["attempt"]) == (run_id, "succeeded", 3)
    (event,) = events(services, run_id)
    written = {(i["kind"], i["locator"]) for i in services.stores.runs.intents(run_id) if i["attempt"] == 1}
    named = {(c["kind"], c["locator"]): c for c in event["changes"]}
    assert written and written <= set(named)
    for change in (named[w] for w in written):
        assert change["details"]["attempt"] == 1 and change["details"]["evidence"] == "read back by attempt 3"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_repository_run_killed_before_its_rename_is_finished_with_one_repository(fleet: Fleet) -> None:
    services = fleet.replica()
    config, key = fleet.config_file(), unique("key")
    name = unique("svc")
    data = {"name": name, "description": "Payments API", "owner": PAYMENTS, "system": "payments",
            "topics": ["payments"]}
    action = "goldenpath:git:repository:create"
    _child(config, action, data, key, "local-git.before-rename")
    lapse()
    assert services.runner.take_over_lapsed() == 1
    (run_id,) = {r["id"] for r in services.stores.runs.list(action_id=action)}
    assert record(services, run_id)["status"] == "succeeded"
    repos = sorted(p.name for p in (fleet.tmp / "git").glob("*/*.git"))
    assert repos == [f"{name}.git"], repos  # the dead attempt's temporary repository is gone
    (event,) = events(services, run_id)
    assert [c["outcome"] for c in event["changes"] if c["kind"] == "repository.repo"] == ["created"]


# -- other Backstage users ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_nobody_else_takes_over_a_crashed_keyed_run_and_not_with_another_input(fleet: Fleet,
                                                                               vault: hvac.Client) -> None:
    a, b = fleet.replica(), fleet.replica()
    service, key = unique(), unique("key")
    run_id = crashed(a, vault_run(service, key=key), point="run.start")
    lapse()
    for who in (BOB, PAT):  # a teammate, an admin: the key is alice's
        with pytest.raises(ConflictError) as taken:
            b.runner.run(vault_run(service, requester=who, key=key))
        assert not isinstance(taken.value, BusyError) and "another requester" in taken.value.detail
    with pytest.raises(NotAllowedError):
        b.runner.run(vault_run(service, requester=MALLORY, key=key))
    with pytest.raises(ConflictError) as other_input:
        b.runner.run(RunRequest(action_id=VAULT_ACTION, input=vault_input(service=unique()), requester=ALICE,
                                idempotency_key=key))
    assert "different input" in other_input.value.detail
    with pytest.raises(ConflictError):
        b.runner.run(vault_run(service, key=key, dry_run=True))  # a dry-run is another input
    assert (record(b, run_id)["status"], record(b, run_id)["attempt"]) == ("running", 1)
    assert vault_objects(vault, service) == set()
    done = b.runner.run(vault_run(service, key=key))
    assert (done["id"], done["attempt"], done["status"]) == (run_id, 2, "succeeded")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_member_removed_after_acceptance_takes_nothing_over_and_the_sweep_adds_no_rights(
        fleet: Fleet, vault: hvac.Client) -> None:
    """A take-over by the sweep acts with the requester as authorized at acceptance (sealed: never wider, see the
    DBA tests); the removed member's own retry is authorized afresh, so it is refused and takes nothing over. The
    sweep does finish the accepted run, as a run that never stopped would have."""
    a, b = fleet.replica(), fleet.replica()
    service, key = unique(), unique("key")
    run_id = crashed(a, vault_run(service, key=key), point="run.start")
    lapse()
    removed = Requester(user=ALICE.user, caller=ALICE.caller, groups=frozenset())
    with pytest.raises(NotAllowedError):
        b.runner.run(vault_run(service, requester=removed, key=key))
    assert (record(b, run_id)["status"], record(b, run_id)["attempt"]) == ("running", 1)
    assert b.runner.take_over_lapsed() == 1
    assert record(b, run_id)["status"] == "succeeded"
    (event,) = events(b, run_id)
    assert (event["actor_user"], event["actor_caller"]) == (ALICE.user, ALICE.caller)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_a_dry_run_taken_over_writes_nothing(fleet: Fleet, vault: hvac.Client) -> None:
    a, b = fleet.replica(), fleet.replica()
    service = unique()

    def die(*args: Any, **kwargs: Any) -> Any:
        raise ReplicaDied("before record")

    a.runner._record = die  # type: ignore[method-assign]
    with pytest.raises(ReplicaDied):
        a.runner.run(vault_run(service, dry_run=True))
    (run_id,) = running_ids(a)
    lapse()
    assert b.runner.take_over_lapsed() == 1
    done = record(b, run_id)
    assert (done["status"], done["dryRun"], done["attempt"]) == ("succeeded", True, 2)
    assert vault_objects(vault, service) == set()
    assert events(b, run_id) == [] and b.stores.runs.intents(run_id) == []
    assert b.stores.inventory.list(service=service) == []


# -- secrets ---------------------------------------------------------------------------------------------------

def _everything_stored(services: Services) -> str:
    with services.database.engine.connect() as connection:
        tables = ("runs", "run_logs", "run_intents", "audit_events", "resources", "name_claims")
        return json.dumps({t: [list(map(str, r)) for r in connection.execute(text(f"SELECT * FROM {t}"))]  # noqa: S608
                           for t in tables})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_secrets_are_never_stored_and_a_run_that_needs_them_is_left_to_its_caller(
        fleet: Fleet, vault: hvac.Client, caplog: pytest.LogCaptureFixture) -> None:
    a, b = fleet.replica(), fleet.replica()
    token, other, api = "bst-" + "q" * 28, "bst-" + "z" * 28, "api-" + "k" * 28
    needs = crashed(a, RunRequest(action_id=CALLER_SECRETS_ACTION, input={"service": unique(), "owner": PAYMENTS},
                                  requester=ALICE, secrets={"backstageToken": token}))
    ignores = crashed(a, vault_run(unique(), secrets={"backstageToken": other}))
    secret_input = crashed(a, RunRequest(action_id=SECRET_ACTION, requester=ALICE, input={
        "service": unique(), "owner": PAYMENTS, "apiToken": api}))
    lapse()
    assert b.runner.take_over_lapsed() == 3
    for run_id in (needs, secret_input):  # never run again with what only its caller had
        closed = record(b, run_id)
        assert closed["status"] == "failed" and "secrets only its caller had" in closed["error"]["detail"]
        assert {c["outcome"] for c in events(b, run_id)[0]["changes"]} == {"unknown"}
    assert record(b, ignores)["status"] == "succeeded"  # an action that reads no ctx.secrets needs no caller
    stored = _everything_stored(b) + caplog.text + (fleet.tmp / "witness.jsonl").read_text()
    for value in (token, other, api):
        assert value not in stored


# -- migrations ------------------------------------------------------------------------------------------------

UPGRADER = """
import sys
from backend.store.database import Database
print(*Database(sys.argv[1]).migrate(), flush=True)
"""


def _cli(config: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from backend.cli import cli

    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_replicas_upgrading_a_fresh_database_at_once_take_turns(fleet: Fleet) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDENPATH_", "VAULT_"))}
    upgrades = [subprocess.Popen([sys.executable, "-c", UPGRADER, fleet.url], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={**env, "PYTHONPATH": str(ROOT)})
                for _ in range(3)]
    outputs = [(p.wait(timeout=120), *p.communicate()) for p in upgrades]
    assert all(code == 0 for code, _, _ in outputs), [err[-1500:] for _, _, err in outputs]
    said = sorted(out.strip() for _, out, _ in outputs)
    head = head_revision()
    assert said == sorted([f"None {head}", f"{head} {head}", f"{head} {head}"]), said  # one upgraded, two found it
    assert Database(fleet.url).schema_revision() == head
    assert _cli(fleet.config_file(), "db", "status").exit_code == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # logic, not the database: SQLite is enough
def test_serving_refuses_an_older_or_an_unknown_newer_schema(fleet: Fleet) -> None:
    config = fleet.config_file()
    database = Database(fleet.url)
    alembic = _alembic_config()
    with database.engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0006")
    with pytest.raises(SchemaNotCurrent, match="goldenpath db upgrade"):
        build_services(settings_from_dict(fleet.raw()), registry=registry())
    assert _cli(config, "db", "status").exit_code == 1
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaNotCurrent, match="newer"):
        build_services(settings_from_dict(fleet.raw()), registry=registry())
    assert _cli(config, "db", "status").exit_code == 1
    assert _cli(config, "db", "upgrade").exit_code != 0  # this version cannot know what 0099 did: it leaves it
    assert database.schema_revision() == "0099"
    database.dispose()
