"""Getting a name another team holds: two teams racing for one service name (threads against one app, on SQLite
and PostgreSQL), names two services would share under a platform's namespace pattern, a person owning a name for
themself, and a database upgraded from before name claims existed (its services must still be their owners')."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from backend.store.database import MIGRATIONS_DIR, Database
from tests.adversarial.conftest import (
    ALICE,
    LEDGER,
    LEDGER_TOKEN,
    MALLORY,
    NAMESPACES,
    ORG,
    PAYMENTS,
    PAYMENTS_TOKEN,
    PLAN,
    REGISTER,
    REPOSITORY,
    VAULT,
    Bench,
    MakeBench,
    bearer,
)
from tests.conftest import unique, vault_input


def _race(bench: Bench, action: str, inputs: dict[str, dict[str, Any]], rounds: int = 6) -> dict[str, list[int]]:
    """Both teams' tokens send their request `rounds` times each, all at once; the status codes per team."""
    tokens = {PAYMENTS: PAYMENTS_TOKEN, LEDGER: LEDGER_TOKEN}
    warm = bench.run(VAULT, vault_input(), bench.admin())  # the KV and auth mounts exist before the race
    assert warm.status_code == 201, warm.text
    barrier = threading.Barrier(2 * rounds)

    def send(team: str) -> tuple[str, int]:
        barrier.wait()
        answer = bench.run(action, inputs[team], bearer(tokens[team]))
        assert answer.status_code in (201, 409), answer.text
        return team, answer.status_code

    with ThreadPoolExecutor(max_workers=2 * rounds) as pool:
        results = list(pool.map(send, [PAYMENTS, LEDGER] * rounds))
    return {team: [status for who, status in results if who == team] for team in tokens}


def test_two_teams_racing_for_one_service_name_leave_it_to_exactly_one(
    make_bench: MakeBench, database_url: str
) -> None:
    bench = make_bench(database_url=database_url)
    service = unique("race")
    inputs = {team: vault_input(service=service, owner=team) for team in (PAYMENTS, LEDGER)}
    statuses = _race(bench, VAULT, inputs)
    winners = [team for team, codes in statuses.items() if 201 in codes]
    assert len(winners) == 1, statuses
    [winner] = winners
    loser = LEDGER if winner == PAYMENTS else PAYMENTS
    assert set(statuses[loser]) == {409}, statuses
    state = bench.snapshot()
    assert {owner for _, name, owner, _ in state["claims"] if service in name} == {winner}
    assert {owner for _, locator, owner, _ in state["inventory"] if service in locator} == {winner}
    [(_path, _, metadata)] = [entry for entry in state["kv"] if entry[0].endswith(f"/{service}")]
    assert metadata["owner"] == winner


def test_one_teams_concurrent_runs_for_its_service_all_finish_with_their_evidence(
    make_bench: MakeBench, database_url: str
) -> None:
    """Runs of one owner racing each other (a retried task, two tabs) converge: none is a 5xx, none is left
    `running` without its audit event (the later one updates the inventory row the first one inserted)."""
    bench = make_bench(database_url=database_url)
    assert bench.run(VAULT, vault_input(), bench.admin()).status_code == 201
    data, count = vault_input(owner=PAYMENTS), 8
    barrier = threading.Barrier(count)

    def send(_: int) -> int:
        barrier.wait()
        return int(bench.run(VAULT, data, bearer(PAYMENTS_TOKEN)).status_code)

    with ThreadPoolExecutor(max_workers=count) as pool:
        statuses = list(pool.map(send, range(count)))
    assert statuses == [201] * count
    state = bench.snapshot()
    assert [status for _, status in state["runs"]].count("succeeded") == count + 1
    assert [event[1] for event in state["audit"]] == ["succeeded"] * (count + 1)


def test_two_teams_racing_for_one_repository_name_leave_it_to_exactly_one(
    make_bench: MakeBench, database_url: str
) -> None:
    bench = make_bench(database_url=database_url)
    name = unique("race")
    inputs = {team: {"name": name, "description": "x", "owner": team, "system": "s"} for team in (PAYMENTS, LEDGER)}
    statuses = _race(bench, REPOSITORY, inputs, rounds=4)
    winners = [team for team, codes in statuses.items() if 201 in codes]
    assert len(winners) == 1, statuses
    [(_repo, config)] = [r for r in bench.snapshot()["repositories"] if r[0] == f"{name}.git"]
    assert f"goldenpath.owner={winners[0]}" in config


def test_a_platform_namespace_pattern_two_services_share_is_held_by_the_first(make_bench: MakeBench) -> None:
    bench = make_bench(policy={"namespace_pattern": "{system}-{environment}"})
    system = unique("sys")
    made = bench.invoke(VAULT, vault_input(system=system, owner=PAYMENTS), ALICE)
    assert made.status_code == 200, made.text
    for action in (VAULT, NAMESPACES):
        data = {k: v for k, v in vault_input(system=system, owner=LEDGER).items()
                if action == VAULT or k != "secretKeys"}
        before = bench.snapshot()
        answer = bench.invoke(action, data, MALLORY)
        assert answer.status_code == 409, answer.text
        assert f"{system}-dev" in answer.json()["error"]["problem"]["detail"]
        # the runner held ledger's own (new, free) service name before the namespace clashed: nothing of payments'
        own = ("service", data["service"], LEDGER, data["service"])
        bench.assert_only_evidence(before, result="failed", held=(own,))


def test_a_person_cannot_own_for_themself_a_name_a_team_holds(bench: Bench) -> None:
    service = unique("svc")
    assert bench.invoke(VAULT, vault_input(service=service, owner=PAYMENTS), ALICE).status_code == 200
    for action, data in ((VAULT, vault_input(service=service, owner=MALLORY)),
                         (REGISTER, {**vault_input(service=service, owner=MALLORY), "description": "mine"}),
                         (REPOSITORY, {"name": service, "description": "mine", "owner": MALLORY, "system": "s"})):
        data.pop("secretKeys") if action == REGISTER else None
        before = bench.snapshot()
        answer = bench.invoke(action, data, MALLORY)
        assert answer.status_code == 409, (action, answer.text)
        bench.assert_only_evidence(before, result="failed")


# -- a database from before name claims ---------------------------------------------------------------------------

def _migrate_to(url: str, revision: str) -> None:
    database = Database(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    database.dispose()


def _old_rows(url: str, rows: list[dict[str, Any]]) -> None:
    database = Database(url)
    with database.engine.begin() as connection:
        for row in rows:
            connection.execute(text(
                "INSERT INTO resources (kind, locator, service, system, owner, environment, attributes, action_id,"
                " run_id, created_at, updated_at, revision) VALUES (:kind, :locator, :service, :system, :owner,"
                " :environment, :attributes, 'goldenpath:old:action:x', :run_id, '2026-01-01T00:00:00Z',"
                " '2026-01-01T00:00:00Z', 1)"),
                {"environment": None, **row, "attributes": json.dumps(row.get("attributes", {})),
                 "run_id": str(uuid.uuid4())})
    database.dispose()


def test_services_provisioned_before_name_claims_stay_their_owners(
    make_bench: MakeBench, database_url: str
) -> None:
    """A Golden Path upgraded to name claims must not hand names its inventory already gives a team to the first
    other team that asks: the upgrade claims them for their recorded owners."""
    service, other = unique("old"), unique("old")
    _migrate_to(database_url, "0004")
    _old_rows(database_url, [  # as earlier versions recorded them: short owner refs included
        {"kind": "service", "locator": service, "service": service, "system": "payments", "owner": "team-payments",
         "attributes": {"description": "Payments API", "costCenter": "cc-1234"}},
        {"kind": "vault.secrets-path", "locator": f"secret/dev/payments/{service}", "service": service,
         "system": "payments", "owner": "team-payments", "environment": "dev",
         "attributes": {"mount": "secret", "path": f"dev/payments/{service}"}},
        {"kind": "kubernetes.namespace", "locator": f"local/{service}-dev", "service": service, "system": "payments",
         "owner": PAYMENTS, "environment": "dev", "attributes": {"cluster": "local", "namespace": f"{service}-dev"}},
        {"kind": "repository", "locator": f"{ORG}/{other}", "service": other, "system": "payments",
         "owner": PAYMENTS, "attributes": {"provider": "local"}},
        {"kind": "kubernetes.namespace", "locator": f"local/{other}-dev", "service": other, "system": "payments",
         "owner": "user:default/alice", "environment": "dev", "attributes": {"namespace": f"{other}-dev"}},
        {"kind": "kubernetes.namespace", "locator": "local/odd", "service": None, "system": None, "owner": None,
         "attributes": {}},  # a row naming no service or owner claims nothing
    ])
    bench = make_bench(database_url=database_url)  # migrates to head, as a restart after the upgrade does
    prod = {"service": service, "system": "payments", "owner": LEDGER, "costCenter": "cc-1", "environments": ["prod"]}
    attacks = [(VAULT, prod), (NAMESPACES, prod), (REGISTER, {**prod, "description": "ours now"}),
               (REPOSITORY, {"name": other, "description": "ours now", "owner": LEDGER, "system": "s"}),
               (NAMESPACES, {**prod, "service": other})]
    for action, data in attacks:
        before = bench.snapshot()
        answer = bench.invoke(action, data, MALLORY)
        assert answer.status_code == 409, (action, answer.text)
        bench.assert_only_evidence(before, result="failed")
    plan = bench.invoke(PLAN, {**prod, "description": "x"}, MALLORY)
    assert any(e["rule"] == "name-available" for e in plan.json()["error"]["problem"]["errors"]), plan.text
    # the owners themselves carry on as before
    alice = {**prod, "owner": "team-payments", "environments": ["dev", "prod"]}
    assert bench.invoke(VAULT, alice, ALICE).status_code == 200
    assert bench.invoke(NAMESPACES, {**prod, "owner": PAYMENTS}, ALICE).status_code == 200


@pytest.mark.parametrize("where", ["service", "environments"])
def test_a_request_the_policy_refuses_holds_no_name(bench: Bench, where: str) -> None:
    data = vault_input(owner=LEDGER)
    if where == "service":
        data["service"] = "vault"  # a name the platform reserves
    else:
        data["environments"] = ["nowhere"]
    before = bench.snapshot()
    answer = bench.invoke(VAULT, data, MALLORY)
    assert answer.status_code == 422, answer.text
    bench.assert_only_evidence(before, result="failed")
