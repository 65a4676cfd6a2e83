"""Backstage's distributed actions protocol: list shape, raw v1 invoke, v2 with secrets, error shape."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import VAULT_ACTION, vault_input

BASE = "/api/goldenpath/.backstage/actions"
ENCODED = VAULT_ACTION.replace(":", "%3A")


def test_list_has_what_the_scaffolder_reads(client: TestClient) -> None:
    [action] = [a for a in client.get(f"{BASE}/v1/actions").json()["actions"] if a["id"] == VAULT_ACTION]
    assert action["pluginId"] == "goldenpath"
    assert action["attributes"] == {"readOnly": False, "idempotent": True, "destructive": False}
    schema = action["schema"]["input"]
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert {"service", "system", "owner", "environments", "costCenter"} <= set(schema["required"])


def test_v1_invoke_takes_the_raw_input_and_answers_output(client: TestClient) -> None:
    response = client.post(f"{BASE}/v1/actions/{ENCODED}/invoke", json=vault_input())
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"output"}
    assert response.json()["output"]["paths"][0]["mount"] == "secret"


def test_v2_invoke_takes_input_and_secrets(client: TestClient) -> None:
    body = {"input": vault_input(), "secrets": {"backstageToken": "bst-secret-value-123"}}
    response = client.post(f"{BASE}/v2/actions/{ENCODED}/invoke", json=body)
    assert response.status_code == 200, response.text
    runs = client.get("/api/v1/runs").json()["items"]
    assert "bst-secret-value-123" not in str(runs)


def test_errors_come_in_backstages_shape_with_our_message(client: TestClient) -> None:
    response = client.post(f"{BASE}/v1/actions/{ENCODED}/invoke", json=vault_input(environments=["qa"]))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"]["name"] == "InputError"
    assert "not one of" in body["error"]["message"]
    assert body["response"] == {"statusCode": 422}
    assert body["error"]["problem"]["rule"] == "allowed-environments"


def test_unknown_action_is_a_backstage_not_found(client: TestClient) -> None:
    response = client.post(f"{BASE}/v1/actions/goldenpath%3Ano%3Asuch/invoke", json={})
    assert response.status_code == 404
    assert response.json()["error"]["name"] == "NotFoundError"
