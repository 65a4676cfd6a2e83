"""The runner's trust rules, on a real database: a request by someone who may not act for the owner (dry-runs
included) is refused before anything runs, and leaves only its evidence (its run record and one audit event naming
who was refused); a claimed user is a claim, never the actor; what is audited is every real run, never a dry-run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backend.errors import NotAllowedError, UpstreamUnavailable
from backend.plugin_api import Requester
from tests.guarantees.trust_bench import (
    ALICE,
    LEDGER,
    MALLORY,
    PAYMENTS,
    PLUGIN,
    Bench,
    make_bench,
    person,
    vault_input,
)

ALICE_IN_PAYMENTS = person(ALICE, PAYMENTS)
MALLORY_IN_LEDGER = person(MALLORY, LEDGER)


@pytest.fixture
def bench(database_url: str, tmp_path: Path) -> Bench:
    return make_bench(database_url, tmp_path)


def refused(bench: Bench, requester: Requester, data: dict[str, Any], **request: Any) -> NotAllowedError:
    with pytest.raises(NotAllowedError) as refusal:
        bench.run(requester, data, **request)
    return refusal.value


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_non_member_is_refused_and_leaves_only_the_evidence_of_it(bench: Bench, dry_run: bool) -> None:
    data = vault_input(owner=PAYMENTS)
    refusal = refused(bench, MALLORY_IN_LEDGER, data, dry_run=dry_run, idempotency_key="task-1/step-1",
                      context={"taskId": "task-1"})
    assert (refusal.status, refusal.rule) == (403, "not-a-member-of-owner")
    assert bench.vault.writes == 0 and bench.vault.paths == {} and bench.vault.policies == {}
    assert (bench.inventory(), bench.claims()) == ([], [])
    [record] = bench.runs()
    assert (record["id"], record["status"], record["requestedBy"], record["idempotencyKey"]) == (
        refusal.run_id, "refused", MALLORY, None)
    assert record["error"]["rule"] == "not-a-member-of-owner"
    [event] = bench.audit()
    assert (event["result"], event["actor_user"], event["actor_caller"], event["run_id"], event["changes"]) == (
        "refused", MALLORY, PLUGIN, refusal.run_id, [])
    assert event["detail"] == refusal.detail and event["input_digest"] == record["inputDigest"]


def test_an_admin_only_field_set_by_a_member_is_refused_before_anything_is_made(
    bench: Bench, tmp_path: Path,
) -> None:
    data = {"name": "payments-api", "owner": PAYMENTS, "system": "payments", "description": "Payments API",
            "adopt": True}
    refusal = refused(bench, ALICE_IN_PAYMENTS, data, action="goldenpath:git:repository:create")
    assert (refusal.rule, refusal.field) == ("admin-only", "adopt")
    assert not (tmp_path / "git").exists() or not any((tmp_path / "git").rglob("*.git"))
    assert [e["result"] for e in bench.audit()] == ["refused"]


def test_a_member_runs_and_is_the_audited_actor(bench: Bench) -> None:
    data = vault_input(owner="team-payments", environments=["dev", "prod"])
    record = bench.run(ALICE_IN_PAYMENTS, data)
    assert (record["status"], record["input"]["owner"]) == ("succeeded", PAYMENTS)  # recorded canonical
    [event] = bench.audit()
    assert (event["result"], event["actor_user"], event["actor_caller"], event["actor_claim"]) == (
        "succeeded", ALICE, PLUGIN, None)
    assert event["changes"] and all(change["outcome"] != "unchanged" for change in event["changes"])
    assert {(row["kind"], row["owner"]) for row in bench.inventory()} == {("vault.secrets-path", PAYMENTS)}


def test_a_claimed_user_is_recorded_as_a_claim_never_as_the_actor(bench: Bench) -> None:
    ci = Requester(user=None, caller="token:ledger-ci", claimed_user="user:default/ceo", groups=frozenset({LEDGER}))
    bench.run(ci, vault_input(owner=LEDGER))
    claiming_more = Requester(user=None, caller="token:ledger-ci", claimed_user=ALICE, groups=frozenset({LEDGER}))
    refused(bench, claiming_more, vault_input(owner=PAYMENTS))  # a claim grants nothing
    assert [(e["actor_user"], e["actor_caller"], e["actor_claim"], e["result"]) for e in bench.audit()] == [
        (None, "token:ledger-ci", "user:default/ceo", "succeeded"),
        (None, "token:ledger-ci", ALICE, "refused")]
    assert [r["requestedBy"] for r in bench.runs()] == [None, None]


def test_dry_runs_are_not_audited_and_failed_runs_are(bench: Bench) -> None:
    bench.run(ALICE_IN_PAYMENTS, vault_input(), dry_run=True)
    assert bench.audit() == []
    bench.vault.down = True
    with pytest.raises(UpstreamUnavailable) as failure:
        bench.run(ALICE_IN_PAYMENTS, vault_input())
    [event] = bench.audit()
    assert (event["result"], event["run_id"], event["actor_user"]) == ("failed", failure.value.run_id, ALICE)
    assert event["detail"] == failure.value.detail
