"""The input validators on their own (no server): whole-value patterns, one-line free text, the credential scan."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from marshmallow import Schema, ValidationError, fields

from backend.errors import PolicyViolation
from backend.naming import DNS_LABEL
from backend.plugin_api import ActionInput
from backend.services.schema_export import json_schema
from backend.validators import FreeText, FullMatch, field_messages, is_credential_message, scanner

ORDINARY = [
    "Payments API",
    "A service that handles card payments for the EU region, owned by team-payments.",
    "Ledger service: reconciles transactions nightly (see https://wiki.example.com/ledger).",
    "Design doc: https://docs.google.com/document/d/1aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdEF/edit",
    "Handles OAuth2 token exchange for the mobile apps (iOS & Android), v2.3.1",
    "The password reset flow; secrets: managed in Vault at kv/dev/payments/payments-api",
    "Runs on Kubernetes 1.31 in eu-west-1; p99 latency < 200ms, SLO 99.95%",
    "id 123e4567-e89b-12d3-a456-426614174000", "ci / build (3.11)", "Zahlungsdienst für Händler", "支付服务 💳",
]
CREDENTIALS = {
    "GitHub Token": "ghp_" + "Zk3r9TqLm2Vx8Pw4Ny7Bc1Hd6Gf5Js0Ka2Qe",
    "AWS Access Key": "AKIA" + "J3K9Q2LMXV7TPW4N",
    "Private Key": "-----BEGIN OPENSSH PRIVATE KEY-----",
    "JSON Web Token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXZhbHVlLWhlcmU",
    "Secret Keyword": "password=hunter2",
    "Basic Auth Credentials": "https://deploy:Sup3r!S3cret@git.example.com/repo.git",
    "Slack Token": "xoxb-" + "123456789012-1234567890123-abcdefghijABCDEFGHIJklmn",
    "Base64 High Entropy String": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Lm3Np0",
}


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_passes(text: str) -> None:
    assert scanner().find(text) is None
    assert FreeText(max_length=200)(text) == text


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_credentials_are_found_and_the_message_never_holds_them(kind: str) -> None:
    secret = CREDENTIALS[kind]
    assert scanner().find(f"Payments API; {secret} for the deploy") == kind
    with pytest.raises(ValidationError) as refused:
        FreeText(max_length=200)(f"Payments API; {secret}")
    [message] = refused.value.messages
    assert message == f"looks like a credential ({kind}); remove it" and is_credential_message(message)
    assert secret not in str(refused.value.messages)


@pytest.mark.parametrize("bad", ["abc\n", "a\x00b", "tab\there", "esc\x1b[2J", "del\x7f", "nel\x85",
                                 "line\u2028sep", "rtl\u202eoverride", "lone\ud800surrogate"])
def test_free_text_is_one_line_without_control_characters(bad: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        FreeText(max_length=100)(bad)


def test_free_text_bounds() -> None:
    text = FreeText(min_length=1, max_length=5)
    assert text("12345") == "12345"
    for bad in ("", "123456"):
        with pytest.raises(ValidationError):
            text(bad)


def test_full_match_refuses_what_re_match_lets_through() -> None:
    label = FullMatch(DNS_LABEL, max_length=63, error="must be a DNS label")
    assert label("payments-api") == "payments-api"
    for bad in ("payments-api\n", "a" * 64, "Payments"):
        with pytest.raises(ValidationError) as refused:
            label(bad)
        assert bad not in str(refused.value.messages)


def test_bounds_and_pattern_are_published() -> None:
    class Sample(Schema):
        name = fields.String(validate=FullMatch(DNS_LABEL, max_length=63))
        note = fields.String(validate=FreeText(min_length=1, max_length=80))

    properties = json_schema(Sample)["properties"]
    assert properties["name"] == {"type": "string", "pattern": DNS_LABEL, "maxLength": 63}
    assert properties["note"] == {"type": "string", "minLength": 1, "maxLength": 80}


def test_an_action_input_turns_credentials_into_a_policy_violation_naming_the_path() -> None:
    class Link(Schema):
        title = fields.String(validate=FreeText(max_length=100))

    class Sample(ActionInput):
        name = fields.String(validate=FullMatch(DNS_LABEL, max_length=63))
        links = fields.List(fields.Nested(Link))

    with pytest.raises(PolicyViolation) as refused:
        Sample().load({"name": "ok", "links": [{"title": "fine"}, {"title": CREDENTIALS["GitHub Token"]}]})
    assert refused.value.status == 422 and refused.value.rule == "no-credentials"
    assert [e.field for e in refused.value.errors] == ["links.1.title"]
    with pytest.raises(ValidationError):  # anything else stays marshmallow's (a 400 from the runner)
        Sample().load({"name": "Not-A-Label"})


def test_field_messages_are_dotted_paths() -> None:
    messages = {"links": {0: {"title": ["bad"]}}, "values": {"k": {"value": ["bad"]}}, "_schema": ["whole"]}
    assert list(field_messages(messages)) == [("links.0.title", "bad"), ("values.k.value", "bad"), ("input", "whole")]


def test_the_scan_is_fast_even_on_adversarial_text() -> None:
    scan = scanner()
    texts = [*ORDINARY, "password" * 125, "pwd" * 333, "pwd_" * 250, "a" * 1000, "secret:" * 142]
    for text in texts:
        best = min(_seconds(scan.find, text) for _ in range(3))
        assert best < 0.1, (text[:20], best)  # about 0.05 ms for a description, 3 ms for 1,000 bad characters


def _seconds(find: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    find(text)
    return time.perf_counter() - started
