"""Secret values never come back out: the redactor masks every known secret (configured tokens, secret inputs,
Backstage's v2 secrets) wherever it sits in text or data, and the runner passes everything it stores, logs, audits or
answers through it, even when an action carelessly logs, returns or raises with the secret in it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from marshmallow import Schema, fields

from backend.errors import RunFailedError, UpstreamError
from backend.plugin_api import Action, ActionContext
from backend.redaction import MASK, Redactor
from tests.guarantees.trust_bench import ALICE, PAYMENTS, Bench, make_bench, person

TOKEN = "tok-" + "s3cr3t" * 4  # a secret input
V2_SECRET = "v2-" + "h1dd3n" * 4  # a Backstage v2 secret
CARELESS = "goldenpath:test:careless:create"


# -- the redactor ----------------------------------------------------------------------------------------------

def test_every_occurrence_of_every_secret_is_masked_in_text() -> None:
    redactor = Redactor(["hunter22", "abcd"])
    assert redactor.text("hunter22 then abcd then hunter22abcd") == "*** then *** then ******"


def test_short_values_are_not_secrets_but_four_characters_are() -> None:
    redactor = Redactor(["abc", "wxyz", "s3cr3t"])
    assert redactor.text("abc wxyz s3cr3t") == "abc *** ***"


def test_a_secret_inside_a_longer_secret_leaves_nothing_of_either() -> None:
    redactor = Redactor(["hunter22", "hunter22-and-more", "more-hunter22"])
    assert redactor.text("[hunter22-and-more] [more-hunter22] [hunter22]") == "[***] [***] [***]"


def test_data_is_masked_in_keys_values_lists_and_tuples_at_any_depth() -> None:
    redactor = Redactor(["hunter22"])
    data = {"hunter22": "x", "nested": {"list": ["a hunter22", ("hunter22", 7)], "n": 7, "none": None,
                                        "deeper": [{"k": "hunter22!"}]}}
    assert redactor.data(data) == {MASK: "x", "nested": {"list": ["a ***", [MASK, 7]], "n": 7, "none": None,
                                                         "deeper": [{"k": "***!"}]}}


def test_a_runs_redactor_keeps_the_services_secrets_and_adds_its_own_to_no_one_else() -> None:
    service = Redactor(["service-token"])
    run = service.child(["run-secret"])
    assert run.text("service-token run-secret") == "*** ***"
    assert service.text("service-token run-secret") == "*** run-secret"


# -- the runner, with a careless action ----------------------------------------------------------------------------

class CarelessInput(Schema):
    owner = fields.String(required=True)
    message = fields.String(required=True)
    apiToken = fields.String(metadata={"secret": True})
    fail = fields.Boolean(load_default=False)
    crash = fields.Boolean(load_default=False)


class CarelessOutput(Schema):
    echoed = fields.String(required=True)


def careless(ctx: ActionContext) -> dict[str, Any]:
    """Logs, returns and raises with every secret it was given, as an out-of-tree action might."""
    token, given = ctx.input.get("apiToken", ""), sorted(ctx.secrets.values())
    ctx.log.info(f"calling out with {token} and {given}", token=token, secrets=dict(ctx.secrets), **{token: "key"})
    ctx.log.warning(f"still holding {token}", tokens=(token, *given))
    if ctx.input["fail"]:
        raise UpstreamError(f"remote refused {token} and {given}", provider="careless")
    if ctx.input["crash"]:
        raise RuntimeError(f"crashed holding {token} and {given}")
    return {"echoed": f"{ctx.input['message']} with {token} and {given}"}


CARELESS_ACTION = Action(id=CARELESS, title="Careless", description="Leaks whatever it can.",
                         input_schema=CarelessInput, output_schema=CarelessOutput, run=careless)


@pytest.fixture
def bench(database_url: str, tmp_path: Path) -> Bench:
    return make_bench(database_url, tmp_path, CARELESS_ACTION)


def run(bench: Bench, **data: Any) -> dict[str, Any]:
    return bench.run(person(ALICE, PAYMENTS), {"owner": PAYMENTS, "message": "hi", "apiToken": TOKEN, **data},
                     action=CARELESS, secrets={"token": V2_SECRET}, context={"taskId": f"task-{TOKEN}"})


def everything_stored(bench: Bench) -> str:
    records = [bench.services.stores.runs.get(r["id"]) for r in bench.runs()]
    return json.dumps([records, bench.audit(), bench.inventory()], default=str)


def test_a_succeeded_runs_record_log_and_answer_hold_no_secret(bench: Bench) -> None:
    answer = run(bench)
    assert answer["output"] == {"echoed": "hi with *** and ['***']"}
    record = bench.services.stores.runs.get(answer["id"])
    assert record is not None
    assert record["input"]["apiToken"] == MASK and record["context"] == {"taskId": "task-***"}
    assert [(line["message"], line["fields"]) for line in record["log"]] == [
        ("calling out with *** and ['***']", {"token": MASK, "secrets": {"token": MASK}, MASK: "key"}),
        ("still holding ***", {"tokens": [MASK, MASK]})]
    for secret in (TOKEN, V2_SECRET):
        assert secret not in json.dumps(answer, default=str) + everything_stored(bench)


def test_a_failed_runs_error_record_and_audit_hold_no_secret(bench: Bench) -> None:
    with pytest.raises(UpstreamError) as failure:
        run(bench, fail=True)
    assert failure.value.detail == "remote refused *** and ['***']"
    [event] = bench.audit()
    assert (event["result"], event["detail"]) == ("failed", "remote refused *** and ['***']")
    for secret in (TOKEN, V2_SECRET):
        assert secret not in json.dumps(failure.value.to_problem()) + everything_stored(bench)


def test_a_crash_is_logged_for_the_operator_without_the_secret(
    bench: Bench, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO), pytest.raises(RunFailedError) as crash:
        run(bench, crash=True)
    assert "failed unexpectedly" in crash.value.detail
    assert "crashed holding ***" in caplog.text
    for secret in (TOKEN, V2_SECRET):
        assert secret not in caplog.text + everything_stored(bench)


def test_the_input_digest_covers_no_secret_value(bench: Bench) -> None:
    """It is kept in the run record and the audit chain: it must not let anyone test a guess of the secret."""
    first, second = run(bench), run(bench, apiToken="another-" + TOKEN)
    assert first["inputDigest"] == second["inputDigest"]
    assert run(bench, message="other")["inputDigest"] != first["inputDigest"]
