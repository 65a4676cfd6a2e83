"""Provision a whole golden-path service through the REST API, as the template's steps would."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import VAULT_ACTION

REGISTER = "/api/v1/actions/goldenpath:catalog:service:register/runs"
# one line (input refuses newlines), still full of YAML and Jinja syntax that must stay one value
EVIL = 'Pays "things" --- apiVersion: backstage.io/v1alpha1 kind: Evil # {{ not a template }}: x'


def provision(client: TestClient, service: str, **extra: Any) -> dict[str, Any]:
    common = {"service": service, "system": "payments", "owner": "group:default/team-payments",
              "costCenter": "cc-1234", "environments": ["dev", "prod"]}
    for path, body in [
        ("goldenpath:git:repository:create", {"name": service, "description": "Payments",
                                              "owner": common["owner"], "system": "payments"}),
        (VAULT_ACTION, {**common, "secretKeys": ["DATABASE_PASSWORD"]}),
        ("goldenpath:kubernetes:namespace:create", {**common, "tier": "small"}),
    ]:
        answer = client.post(f"/api/v1/actions/{path}/runs", json={"input": body})
        assert answer.status_code == 201, answer.text
    registered = client.post(REGISTER, json={"input": {
        **common, "description": EVIL, "lifecycle": "production", "tags": ["python", "payments"],
        "links": [{"url": "https://runbooks.example.com/payments", "title": "Runbook"}], **extra}})
    assert registered.status_code == 201, registered.text
    return dict(registered.json())
