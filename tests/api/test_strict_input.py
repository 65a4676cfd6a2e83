"""Strict input, for every action and every string field it publishes (nested ones and list items too): a
trailing newline, a NUL, another control character and an over-long value are refused with a 4xx naming the
field, on the REST route and on Backstage's native route, before anything is written. A credential in free text
is a 422 that never echoes it, and the envelope's claimed user is checked as strictly."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from backend.plugin_api import Action
from backend.services.registry import ActionRegistry
from tests.conftest import VAULT_ACTION, vault_input

ACTIONS = ActionRegistry.discover().all()
NATIVE = "/api/goldenpath/.backstage/actions/v1/actions"
# Candidates for a valid value of a patterned string the examples leave out (list items, nested objects)
CANDIDATES = ("payments", "main", "python", "alice", "ok", "DATABASE_PASSWORD", "group:default/team-payments")
SAMPLE_KEY = "extra_value"
GITHUB_TOKEN = "ghp_" + "Zk3r9TqLm2Vx8Pw4Ny7Bc1Hd6Gf5Js0Ka2Qe"
AWS_KEY = "AKIA" + "J3K9Q2LMXV7TPW4N"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----"


def _sample(schema: dict[str, Any]) -> Any:
    """A valid value for `schema` (only needed where the example has none)."""
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        return {name: _sample(prop) for name, prop in schema["properties"].items()
                if name in schema.get("required", [])}
    if kind == "object":
        return {SAMPLE_KEY: _sample(schema.get("additionalProperties") or {"type": "string"})}
    if kind == "array":
        return [_sample(schema["items"])]
    return _sample_string(schema)


def _sample_string(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("format") == "url":
        return "https://example.com/docs"
    if "pattern" in schema:
        return next(c for c in CANDIDATES if re.fullmatch(schema["pattern"], c) and len(c) <= schema["maxLength"])
    return "ok"


def _complete(schema: dict[str, Any], value: Any) -> Any:
    """`value` with a valid element in every container the schema declares, so every string has a place."""
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        out = dict(value)
        for name, prop in schema["properties"].items():
            if prop.get("type") in ("object", "array"):
                out[name] = _complete(prop, out.get(name) or _sample(prop))
        return out
    if kind == "object":
        return dict(value) or _sample(schema)
    if kind == "array":
        items = list(value) or [_sample(schema["items"])]
        return [_complete(schema["items"], items[0]), *items[1:]]
    return value


StringField = tuple[tuple[Any, ...], str, dict[str, Any]]


def _strings(schema: dict[str, Any], path: tuple[Any, ...] = ()) -> Iterator[StringField]:
    """(where to put a value, the field the error must name, the string's schema) for every string."""
    kind = schema.get("type")
    if kind == "string":
        yield path, ".".join(map(str, path)), schema
    elif kind == "object" and "properties" in schema:
        for name, prop in schema["properties"].items():
            yield from _strings(prop, (*path, name))
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        for where, _, prop in _strings(schema["additionalProperties"], (*path, SAMPLE_KEY)):
            yield where, ".".join(map(str, where)) + ".value", prop  # marshmallow names a dict's value so
    elif kind == "array":
        yield from _strings(schema["items"], (*path, 0))


def _with(data: dict[str, Any], path: tuple[Any, ...], value: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError):
            return None
    return data


def _bad_values(valid: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    if "maxLength" in schema:
        over = valid + "a" * max(schema["maxLength"] + 1 - len(valid), 1)
    else:
        assert "enum" in schema, f"a string with neither maxLength nor enum: {schema}"
        over = "x" * 10_000
    return [("trailing newline", valid + "\n"), ("NUL", valid[:1] + "\x00" + valid[1:]),
            ("ESC", valid + "\x1b[2J"), ("over-long", over)]


def _counts(client: TestClient) -> tuple[int, int, int]:
    runs = client.get("/api/v1/runs", params={"limit": 500}).json()["items"]
    assert not [run for run in runs if run["status"] == "succeeded"], runs
    return (len(runs), len(client.get("/api/v1/inventory").json()["items"]),
            len(client.get("/api/v1/audit", params={"limit": 1000}).json()["items"]))


def _assert_refused(response: Any, field: str, *, native: bool) -> dict[str, Any]:
    assert response.status_code in (400, 422), (field, response.status_code, response.text[:500])
    if native:  # Backstage's error shape, carrying our problem
        assert response.headers["content-type"] == "application/json"
        problem: dict[str, Any] = response.json()["error"]["problem"]
    else:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
    assert problem["status"] == response.status_code
    assert field in [error["field"] for error in problem.get("errors", [])], (field, problem)
    return problem


def _base(action: Action, client: TestClient) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = client.get(f"/api/v1/actions/{action.id}").json()["schema"]["input"]
    base = _complete(schema, copy.deepcopy(action.examples[0].input))
    action.input_schema().load(base)  # the base is valid: only the bad value can be what is refused
    return schema, base


@pytest.mark.parametrize("action", ACTIONS, ids=[a.id for a in ACTIONS])
def test_every_string_field_refuses_control_characters_and_excess(client: TestClient, action: Action) -> None:
    schema, base = _base(action, client)
    before = _counts(client)
    fields = list(_strings(schema))
    assert fields, f"{action.id} publishes no string field"
    native = f"{NATIVE}/{action.id.replace(':', '%3A')}/invoke"
    for where, field, prop in fields:
        valid = _get(base, where) if isinstance(_get(base, where), str) else _sample(prop)
        for label, bad in _bad_values(valid, prop):
            data = _with(base, where, bad)
            rest = client.post(f"/api/v1/actions/{action.id}/runs", json={"input": data, "dryRun": False})
            _assert_refused(rest, field, native=False)
            assert json.dumps(bad)[1:-1] not in rest.text, (field, label)  # named, never echoed
            _assert_refused(client.post(native, json=data), field, native=True)
    assert _counts(client) == before


def test_a_dict_key_with_a_trailing_newline_is_refused(client: TestClient) -> None:
    action = ActionRegistry.discover().get("goldenpath:git:repository:create")
    _, base = _base(action, client)
    response = client.post(f"/api/v1/actions/{action.id}/runs", json={"input": {**base, "values": {"team\n": "x"}}})
    assert response.status_code == 400
    assert all(e["field"].startswith("values.") for e in response.json()["errors"]), response.text


@pytest.mark.parametrize("credential", [GITHUB_TOKEN, AWS_KEY, PRIVATE_KEY, "password=hunter2-but-longer"],
                         ids=["github-token", "aws-key", "private-key-header", "password-assignment"])
def test_a_credential_in_a_description_is_refused_and_never_echoed(
    client: TestClient, credential: str, caplog: pytest.LogCaptureFixture,
) -> None:
    action = ActionRegistry.discover().get("goldenpath:catalog:service:register")
    data = {**action.examples[0].input, "description": f"Payments API, deploys with {credential} for now"}
    response = client.post(f"/api/v1/actions/{action.id}/runs", json={"input": data, "dryRun": False})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["rule"] == "no-credentials"
    assert problem["errors"] == [{"field": "description", "message": problem["errors"][0]["message"],
                                  "rule": "no-credentials"}]
    assert problem["errors"][0]["message"].startswith("looks like a credential (")
    native = client.post(f"{NATIVE}/{action.id.replace(':', '%3A')}/invoke", json=data)
    assert native.status_code == 422
    stored = [client.get(path).text for path in ("/api/v1/runs", "/api/v1/inventory", "/api/v1/audit",
                                                  "/api/v1/catalog/entities.yaml")]
    seen = [response.text, native.text, str(native.headers), *stored, caplog.text]
    assert not [text for text in seen if credential in text]
    assert client.get("/api/v1/runs").json()["items"] == [] and client.get("/api/v1/audit").json()["items"] == []


def test_credentials_are_refused_in_every_free_text_field(client: TestClient) -> None:
    repository = ActionRegistry.discover().get("goldenpath:git:repository:create")
    register = ActionRegistry.discover().get("goldenpath:catalog:service:register")
    cases = [
        (repository, {"values": {"api_token": GITHUB_TOKEN}}, "values.api_token.value"),
        (repository, {"protection": {"requiredStatusChecks": [f"ci {AWS_KEY}"]}}, "protection.requiredStatusChecks.0"),
        (register, {"links": [{"url": "https://deploy:Sup3rS3cret!@example.com/", "title": "Docs"}]}, "links.0.url"),
        (register, {"title": f"Payments {GITHUB_TOKEN}"}, "title"),
    ]
    for action, extra, field in cases:
        response = client.post(f"/api/v1/actions/{action.id}/runs",
                               json={"input": {**action.examples[0].input, **extra}})
        assert response.status_code == 422, (field, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field]
        assert GITHUB_TOKEN not in response.text and AWS_KEY not in response.text and "Sup3r" not in response.text
    assert client.get("/api/v1/runs").json()["items"] == []


def test_ordinary_descriptions_pass(client: TestClient) -> None:
    action = ActionRegistry.discover().get("goldenpath:platform:service:plan")
    description = ("Payments API: card and SEPA payments for the EU (v2.3), docs at "
                   "https://docs.google.com/document/d/1aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdEF/edit")
    response = client.post(f"/api/v1/actions/{action.id}/runs",
                           json={"input": {**action.examples[0].input, "description": description}})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("context", [
    {"user": "user:default/jane\x00"}, {"user": "user:default/jane\n"}, {"user": "jane doe"},
    {"user": "u" * 301}, {"taskId": "t-1\n"}, {"stepId": "plan\x00"},
    {"templateRef": "template:default/golden-path\n"},
])
def test_the_envelope_context_is_strict(client: TestClient, context: dict[str, str]) -> None:
    response = client.post(f"/api/v1/actions/{VAULT_ACTION}/runs", json={"input": vault_input(), "context": context})
    field = f"context.{next(iter(context))}"
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert client.get("/api/v1/runs").json()["items"] == []


@pytest.mark.parametrize("key", ["key-1\n", "key\x00", "k" * 201])
def test_the_idempotency_key_is_strict(client: TestClient, key: str) -> None:
    response = client.post(f"/api/v1/actions/{VAULT_ACTION}/runs", json={"input": vault_input(), "idempotencyKey": key})
    assert response.status_code == 400, response.text
    assert "idempotencyKey" in [e["field"] for e in response.json()["errors"]]
