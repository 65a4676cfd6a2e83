"""Idempotency keys across identities: replaying another requester's run (its output, or a run of a team one is
not in) by reusing its key and input; and what a refused request does to a key."""

from __future__ import annotations

import copy
from typing import Any

from tests.adversarial.conftest import (
    ALICE,
    LEDGER_TOKEN,
    MALLORY,
    PAYMENTS,
    PAYMENTS_TOKEN,
    PLAN,
    VAULT,
    Bench,
    bearer,
)
from tests.conftest import unique, vault_input


def _plan(service: str) -> dict[str, Any]:
    return {"service": service, "system": "payments", "owner": PAYMENTS, "costCenter": "cc-1234",
            "environments": ["dev"], "description": "Payments API"}


def test_another_requester_cannot_replay_a_plan_by_its_key(bench: Bench) -> None:
    """A plan needs no membership to run (it reports the rule instead), so its replay must not hand another
    requester the owner's answer: a key is the requester's own."""
    key = unique("task") + "-plan"
    plan = _plan(unique("svc"))
    first = bench.run(PLAN, plan, bearer(PAYMENTS_TOKEN), idempotencyKey=key)
    assert first.status_code == 201, first.text
    before = bench.snapshot()
    replay = bench.run(PLAN, copy.deepcopy(plan), bearer(LEDGER_TOKEN), idempotencyKey=key)
    assert replay.status_code == 409, replay.text
    assert "resources" not in replay.text and first.json()["id"] not in replay.text
    bench.assert_only_evidence(before, result=None)
    again = bench.run(PLAN, plan, bearer(PAYMENTS_TOKEN), idempotencyKey=key)
    assert (again.status_code, again.json()["replayed"], again.json()["id"]) == (200, True, first.json()["id"])


def test_a_person_cannot_replay_another_persons_run_by_its_key(bench: Bench) -> None:
    """The same key and input from another person, even one of the same team through another credential, is not
    a retry of the first request."""
    bench.keys.members["user:default/bob"] = [PAYMENTS]
    key, data = unique("task"), vault_input(owner=PAYMENTS)
    first = bench.run(VAULT, data, bench.as_user(ALICE), idempotencyKey=key)
    assert first.status_code == 201, first.text
    for headers in (bench.as_user("user:default/bob"), bearer(PAYMENTS_TOKEN)):
        before = bench.snapshot()
        answer = bench.run(VAULT, data, headers, idempotencyKey=key)
        assert answer.status_code == 409, answer.text
        bench.assert_only_evidence(before, result=None)
    replay = bench.run(VAULT, data, bench.as_user(ALICE), idempotencyKey=key)
    assert (replay.status_code, replay.json()["replayed"]) == (200, True)


def test_a_non_member_reusing_a_teams_key_is_refused_before_any_replay(bench: Bench) -> None:
    key, data = unique("task"), vault_input(owner=PAYMENTS)
    assert bench.run(VAULT, data, bench.as_user(ALICE), idempotencyKey=key).status_code == 201
    before = bench.snapshot()
    answer = bench.run(VAULT, data, bench.as_user(MALLORY), idempotencyKey=key)
    assert answer.status_code == 403, answer.text
    assert "output" not in answer.json()
    bench.assert_only_evidence(before, result="refused")


def test_a_refused_request_does_not_hold_the_key_it_named(bench: Bench) -> None:
    """Mallory cannot squat the key alice's task will use by sending it first with alice's input."""
    key, data = unique("task"), vault_input(owner=PAYMENTS)
    assert bench.run(VAULT, data, bench.as_user(MALLORY), idempotencyKey=key).status_code == 403
    assert bench.run(VAULT, data, bench.as_user(ALICE), idempotencyKey=key).status_code == 201
