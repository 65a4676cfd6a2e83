"""Bad input past validation, or into a 5xx: homoglyphs, Unicode case and width tricks, invisible characters,
case games and trailing newlines in every name; skeleton values that try to override the owner or run as
templates; envelopes of the wrong shape, deep nesting, huge numbers and lone surrogates. Every one is a 4xx that
writes nothing, or (for skeleton values) lands as inert text."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.adversarial.conftest import (
    ALICE,
    LEDGER,
    NAMESPACES,
    ORG,
    PAYMENTS,
    REGISTER,
    REPOSITORY,
    VAULT,
    Bench,
    bearer,
    invoke_url,
    runs_url,
)
from tests.conftest import API_TOKEN, unique, vault_input

TRICKS = {
    "cyrillic a": "p\u0430yments",
    "fullwidth": "\uff50ayments",
    "kelvin sign": "\u212aayments",
    "long s": "\u017fervice",
    "dotless i": "pa\u0131d",
    "zero width space": "pay\u200bments",
    "zero width joiner": "pay\u200dments",
    "combining acute": "payme\u0301nts",
    "nbsp": "pay\u00a0ments",
    "uppercase": "Payments",
    "trailing newline": "payments\n",
    "leading space": " payments",
    "NUL": "pay\x00ments",
    "soft hyphen": "pay\u00adments",
    "right-to-left override": "pay\u202ements",
    "bom": "\ufeffpayments",
    "dash lookalike": "pay\u2010ments",
    "over-long": "p" * 64,
    "empty": "",
}


@pytest.mark.parametrize("field", ["service", "system", "environments", "namespace", "serviceAccount"])
@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_name_tricks_are_400_on_both_routes_and_write_nothing(bench: Bench, field: str, trick: str) -> None:
    value = TRICKS[trick]
    data = vault_input(owner=PAYMENTS)
    data[field] = [value] if field == "environments" else value
    before = bench.snapshot()
    native = bench.invoke(VAULT, data, ALICE)
    rest = bench.run(VAULT, data, bench.admin())
    assert (native.status_code, rest.status_code) == (400, 400), (trick, native.text, rest.text)
    assert any(e["field"].startswith(field) for e in rest.json()["errors"]), rest.json()
    bench.assert_only_evidence(before, result=None)


@pytest.mark.parametrize("trick", ["kelvin sign", "cyrillic a", "uppercase", "trailing newline", "zero width space"])
def test_repository_names_tricks_are_400(bench: Bench, trick: str) -> None:
    data = {"name": TRICKS[trick], "description": "x", "owner": PAYMENTS, "system": "payments"}
    before = bench.snapshot()
    assert bench.invoke(REPOSITORY, data, ALICE).status_code == 400
    bench.assert_only_evidence(before, result=None)


def _file(bench: Bench, name: str, path: str) -> str:
    bare = bench.tmp / "git" / ORG / f"{name}.git"
    return subprocess.run(["git", f"--git-dir={bare}", "show", f"HEAD:{path}"], capture_output=True, text=True,
                          check=True).stdout


def test_skeleton_values_cannot_change_the_owner_or_run_as_templates(bench: Bench) -> None:
    name = unique("svc")
    values = {"owner": LEDGER, "owner_team": "team-ledger", "name": "other", "org": "evil", "system": "x",
              "skeleton": "evil", "default_branch": "evil", "service_account": "default",
              "payload": "{{ owner }} {% raw %}{{ 7*7 }}{% endraw %} {{ ''.__class__.__mro__ }} {{ 7*7 }}"}
    data = {"name": name, "description": "{{ 7*7 }} {% if true %}x{% endif %}", "owner": PAYMENTS,
            "system": "payments", "values": values}
    answer = bench.invoke(REPOSITORY, data, ALICE)
    assert answer.status_code == 200, answer.text
    marker = yaml.safe_load(_file(bench, name, ".goldenpath.yaml"))
    assert (marker["owner"], marker["team"]) == (PAYMENTS, "team-payments")
    assert _file(bench, name, "CODEOWNERS").strip().endswith(f"@{ORG}/team-payments")
    readme = _file(bench, name, "README.md")
    assert "{{ 7*7 }}" in readme and "49" not in readme  # the description is text, not a template
    # mallory cannot slip her team in through values either: she is no member of the owner
    assert bench.invoke(REPOSITORY, {**data, "name": unique("svc")}, "user:default/mallory").status_code == 403


@pytest.mark.parametrize("key", ["Owner", "owner\n", "__class__", "a-b", "1x", "x" * 42, "", "owner.team"])
def test_skeleton_value_keys_that_are_not_names_are_400(bench: Bench, key: str) -> None:
    data = {"name": unique("svc"), "description": "x", "owner": PAYMENTS, "system": "payments",
            "values": {key: "v"}}
    before = bench.snapshot()
    answer = bench.invoke(REPOSITORY, data, ALICE)
    assert answer.status_code == 400, (key, answer.text)
    bench.assert_only_evidence(before, result=None)


ENVELOPES: dict[str, Any] = {
    "input is a list": {"input": [vault_input()]},
    "input is a string": {"input": "service=x"},
    "input is null": {"input": None},
    "dryRun is a string": {"input": vault_input(), "dryRun": "false"},
    "context is a list": {"input": vault_input(), "context": ["x"]},
    "huge integer": {"input": {"name": "x", "description": "x", "owner": PAYMENTS, "system": "s",
                               "protection": {"requiredApprovingReviews": 10 ** 40}}},
    "environments of objects": {"input": {**vault_input(), "environments": [{"name": "dev"}]}},
    "owner is a number": {"input": {**vault_input(), "owner": 7}},
    "owner is an object": {"input": {**vault_input(), "owner": {"$ne": None}}},
    "too many environments": {"input": {**vault_input(), "environments": ["dev"] * 11}},
    "too many secret keys": {"input": {**vault_input(), "secretKeys": [f"K{i}" for i in range(51)]}},
}


@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
def test_envelopes_of_the_wrong_shape_are_400_not_5xx(bench: Bench, envelope: str) -> None:
    body = ENVELOPES[envelope]
    action = REPOSITORY if envelope == "huge integer" else VAULT
    before = bench.snapshot()
    answer = bench.client.post(runs_url(action), json=body, headers=bench.admin())
    assert answer.status_code == 400, (envelope, answer.status_code, answer.text)
    bench.assert_only_evidence(before, result=None)


@pytest.mark.parametrize("raw", [
    b'{"input": {"service": "a\\ud800b"}}',  # a lone surrogate
    b'{"input": ' + b'[' * 5000 + b']' * 5000 + b'}',  # deep nesting
    b'{"input": {"service": "x", "service": "y"}}',  # a duplicate key
    b'{"input": NaN}',
    b'{"input": {}, }',
    b'\xff\xfe{}',
])
def test_raw_bodies_meant_to_break_the_parser_are_4xx(bench: Bench, raw: bytes) -> None:
    before = bench.snapshot()
    for url in (runs_url(VAULT), invoke_url(VAULT)):
        headers = {**bench.admin(), "Content-Type": "application/json"}
        answer = bench.client.post(url, content=raw, headers=headers)
        assert 400 <= answer.status_code < 500, (raw[:40], url, answer.status_code, answer.text[:300])
    bench.assert_only_evidence(before, result=None)


@pytest.mark.parametrize("action", [VAULT, NAMESPACES, REGISTER])
def test_free_text_with_a_lone_surrogate_or_bidi_override_is_refused(bench: Bench, action: str) -> None:
    data: dict[str, Any] = {**vault_input(owner=PAYMENTS), "description": "ok"}
    if action != VAULT:
        data.pop("secretKeys")
    if action != REGISTER:
        data.pop("description")
        data["costCenter"] = "cc\u202e1234"
    else:
        data["description"] = "pays \u202egnp.exe"
    before = bench.snapshot()
    answer = bench.client.post(invoke_url(action), content=json.dumps(data).encode(),
                               headers={**bench.as_user(ALICE), "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    bench.assert_only_evidence(before, result=None)


def test_secrets_of_the_wrong_shape_on_the_v2_route_are_400(bench: Bench) -> None:
    url = invoke_url(VAULT).replace("/v1/", "/v2/")
    before = bench.snapshot()
    for secrets in ({"a": 1}, {"a": {"b": "c"}}, ["x"], {f"k{i}": "v" for i in range(51)}, {"a": "x" * 70000}):
        answer = bench.client.post(url, json={"input": vault_input(), "secrets": secrets}, headers=bearer(API_TOKEN))
        assert answer.status_code in (400, 413), (secrets, answer.text[:300])
    bench.assert_only_evidence(before, result=None)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>", "file:///etc/passwd",
                                 "https://user:hunter2x@example.com/", "https://example.com/\nkind: Group",
                                 "//example.com/x", "https://exa\u202emple.com"])
def test_links_that_are_not_plain_web_links_are_refused(bench: Bench, url: str) -> None:
    data = {**vault_input(owner=PAYMENTS), "description": "ok", "links": [{"url": url, "title": "x"}]}
    data.pop("secretKeys")
    before = bench.snapshot()
    answer = bench.invoke(REGISTER, data, ALICE)
    assert answer.status_code in (400, 422), (url, answer.text)
    bench.assert_only_evidence(before, result=None)


def test_text_in_the_catalog_feed_stays_text(bench: Bench) -> None:
    """What a team writes is a YAML value in its own Component: it cannot add an entity, a kind or an owner."""
    service = unique("svc")
    data = {**vault_input(service=service, owner=PAYMENTS), "description": "x --- kind: Group metadata: {name: a}",
            "title": "&anchor *alias !!python/object:os.system ['id']", "tags": ["a:b+#"]}
    data.pop("secretKeys")
    assert bench.invoke(REGISTER, data, ALICE).status_code == 200
    feed = bench.client.get("/api/v1/catalog/entities.yaml")
    entities = [e for e in yaml.safe_load_all(feed.text) if e]
    assert {e["kind"] for e in entities} <= {"Component", "Resource"}
    [component] = [e for e in entities if e["metadata"]["name"] == service]
    assert component["spec"]["owner"] == PAYMENTS
    assert component["metadata"]["description"] == data["description"]
    assert component["metadata"]["title"] == data["title"]
