"""Idempotency keys, on a real database: the same key and input replays the stored answer without running again;
the same key with another input, or from another person or credential, is a 409; a dry-run's key never answers a
real run; a refused request holds no key, and a non-member is refused before any replay; a failed run gives its
key back so a retry finishes the work."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import ConflictError, NotAllowedError, UpstreamUnavailable
from backend.plugin_api import Requester
from tests.guarantees.trust_bench import ALICE, BOB, LEDGER, MALLORY, PAYMENTS, Bench, make_bench, person, vault_input

ALICE_IN_PAYMENTS = person(ALICE, PAYMENTS)
KEY = "task-1/step-1"


@pytest.fixture
def bench(database_url: str, tmp_path: Path) -> Bench:
    return make_bench(database_url, tmp_path)


def test_the_same_key_and_input_replays_without_running_again(bench: Bench) -> None:
    data = vault_input()
    first = bench.run(ALICE_IN_PAYMENTS, data, idempotency_key=KEY)
    writes = bench.vault.writes
    second = bench.run(ALICE_IN_PAYMENTS, dict(reversed(list(data.items()))), idempotency_key=KEY)
    assert (first["replayed"], second["replayed"]) == (False, True)
    assert (second["id"], second["output"], second["status"]) == (first["id"], first["output"], "succeeded")
    assert bench.vault.writes == writes
    assert [e["run_id"] for e in bench.audit()] == [first["id"]] and len(bench.runs()) == 1


def test_the_same_key_with_another_input_is_a_conflict(bench: Bench) -> None:
    data = vault_input()
    bench.run(ALICE_IN_PAYMENTS, data, idempotency_key=KEY)
    writes = bench.vault.writes
    for other in ({**data, "environments": ["dev", "prod"]}, {**data, "secretKeys": ["API_KEY"]}):
        with pytest.raises(ConflictError, match="was already used with a different input"):
            bench.run(ALICE_IN_PAYMENTS, other, idempotency_key=KEY)
    assert bench.vault.writes == writes and len(bench.runs()) == 1


@pytest.mark.parametrize("other", [person(BOB, PAYMENTS), person(ALICE, PAYMENTS, caller="backstage:mcp-actions"),
                                   person(BOB, PAYMENTS, caller="token:payments-ci")],
                         ids=["another-person-same-plugin", "same-person-another-plugin", "another-credential"])
def test_a_key_is_its_requesters_another_gets_a_conflict_and_learns_nothing(bench: Bench, other: Requester) -> None:
    data = vault_input()
    first = bench.run(ALICE_IN_PAYMENTS, data, idempotency_key=KEY)
    with pytest.raises(ConflictError) as conflict:
        bench.run(other, data, idempotency_key=KEY)
    assert conflict.value.detail == f"idempotency key {KEY!r} is already used by another requester"
    assert first["id"] not in str(conflict.value.to_problem())


def test_a_dry_runs_key_never_answers_a_real_run(bench: Bench) -> None:
    data = vault_input()
    plan = bench.run(ALICE_IN_PAYMENTS, data, dry_run=True, idempotency_key=KEY)
    assert plan["dryRun"] is True and bench.vault.writes == 0
    with pytest.raises(ConflictError, match="different input"):
        bench.run(ALICE_IN_PAYMENTS, data, idempotency_key=KEY)
    assert bench.vault.writes == 0
    real = bench.run(ALICE_IN_PAYMENTS, data, idempotency_key="task-1/step-2")
    assert real["dryRun"] is False and bench.vault.writes > 0


def test_a_refused_request_holds_no_key(bench: Bench) -> None:
    data = vault_input(owner=PAYMENTS)
    with pytest.raises(NotAllowedError):
        bench.run(person(MALLORY, LEDGER), data, idempotency_key=KEY)
    done = bench.run(ALICE_IN_PAYMENTS, data, idempotency_key=KEY)
    assert (done["status"], done["replayed"], done["idempotencyKey"]) == ("succeeded", False, KEY)


def test_a_non_member_reusing_a_teams_key_is_refused_before_any_replay(bench: Bench) -> None:
    data = vault_input(owner=PAYMENTS)
    bench.run(ALICE_IN_PAYMENTS, data, idempotency_key=KEY)
    with pytest.raises(NotAllowedError) as refusal:
        bench.run(person(MALLORY, LEDGER), data, idempotency_key=KEY)
    assert refusal.value.rule == "not-a-member-of-owner"
    assert [e["result"] for e in bench.audit()] == ["succeeded", "refused"]


def test_a_failed_run_gives_its_key_back_so_a_retry_finishes_the_work(bench: Bench) -> None:
    data = vault_input()
    bench.vault.down = True
    with pytest.raises(UpstreamUnavailable) as failure:
        bench.run(ALICE_IN_PAYMENTS, data, idempotency_key=KEY)
    assert bench.services.stores.runs.get(str(failure.value.run_id))["status"] == "failed"  # type: ignore[index]
    bench.vault.down = False
    retried = bench.run(ALICE_IN_PAYMENTS, data, idempotency_key=KEY)
    assert (retried["status"], retried["replayed"]) == ("succeeded", False)
    assert bench.vault.writes > 0
    assert [e["result"] for e in bench.audit()] == ["failed", "succeeded"]
