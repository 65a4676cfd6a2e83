"""A real Backstage scaffolder lists and runs Golden Path's actions over the distributed actions protocol.

Backstage calls Golden Path with ES256 plugin tokens (sub scaffolder, aud goldenpath) that Golden Path
verifies against the scaffolder's JWKS; the action writes to a real OpenBao.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import quote

import hvac
import hvac.exceptions
import pytest

from tests.e2e.conftest import TEMPLATE_NAME, VAULT_ACTION, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]  # the first run includes `npm ci`

TASK_TIMEOUT = 60.0
CATALOG_TIMEOUT = 60.0


def _wait_for_template(stack: Stack) -> None:
    deadline = time.monotonic() + CATALOG_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        last = stack.backstage_api("GET", f"/api/catalog/entities/by-name/template/default/{TEMPLATE_NAME}")
        if last.status_code == 200:
            return
        time.sleep(0.5)
    pytest.fail(f"the catalog did not ingest template:default/{TEMPLATE_NAME} within {CATALOG_TIMEOUT:.0f} s: "
                f"{last.status_code if last is not None else '-'} {last.text if last is not None else ''}")


def _run_task(stack: Stack, values: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Create a task from the template, wait for it to end; return the task and its events."""
    _wait_for_template(stack)
    created = stack.backstage_api("POST", "/api/scaffolder/v2/tasks",
                                  json={"templateRef": f"template:default/{TEMPLATE_NAME}", "values": values})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    deadline = time.monotonic() + TASK_TIMEOUT
    while True:
        task = stack.backstage_api("GET", f"/api/scaffolder/v2/tasks/{task_id}").json()
        if task["status"] in {"completed", "failed", "cancelled"}:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"task {task_id} still {task['status']} after {TASK_TIMEOUT:.0f} s")
        time.sleep(0.3)
    events = stack.backstage_api("GET", f"/api/scaffolder/v2/tasks/{task_id}/events").json()
    return task, events


def _completion(events: list[dict[str, Any]]) -> dict[str, Any]:
    completions = [event for event in events if event["type"] == "completion"]
    assert len(completions) == 1, events
    body: dict[str, Any] = completions[0]["body"]
    return body


def _log(events: list[dict[str, Any]]) -> str:
    return "\n".join(str(event["body"].get("message")) for event in events)


def test_scaffolder_lists_the_goldenpath_action_with_its_schema(stack: Stack) -> None:
    response = stack.backstage_api("GET", "/api/scaffolder/v2/actions")
    assert response.status_code == 200, response.text
    actions = {action["id"]: action for action in response.json()}
    assert VAULT_ACTION in actions, sorted(actions)
    action = actions[VAULT_ACTION]
    schema = action["schema"]["input"]
    assert {"service", "system", "owner", "environments", "costCenter", "secretKeys"} <= set(schema["properties"])
    assert {"service", "system", "owner", "environments", "costCenter"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    assert "secretsPath" in action["schema"]["output"]["properties"]
    assert action.get("description")


def test_task_creates_the_secrets_path_in_openbao(stack: Stack) -> None:
    service, system = f"svc-{secrets.token_hex(3)}", "payments"
    task, events = _run_task(stack, {"service": service, "system": system, "environments": ["dev"]})

    completion = _completion(events)
    assert task["status"] == "completed", _log(events)
    assert completion["message"] == "Run completed with status: completed"
    assert completion["output"]["secretsPath"] == f"dev/{system}/{service}"
    assert completion["output"]["changed"] is True

    bao = hvac.Client(url=stack.bao.addr, token=stack.bao.token)
    metadata = bao.secrets.kv.v2.read_secret_metadata(f"dev/{system}/{service}", mount_point="secret")
    custom = metadata["data"]["custom_metadata"]
    assert custom["owner"] == "group:default/team-a"
    assert custom["cost-center"] == "cc-1"
    secret = bao.secrets.kv.v2.read_secret_version(f"dev/{system}/{service}", mount_point="secret",
                                                   raise_on_deleted_version=True)
    assert set(secret["data"]["data"]) == {"API_KEY"}

    again, again_events = _run_task(stack, {"service": service, "system": system, "environments": ["dev"]})
    assert again["status"] == "completed", _log(again_events)
    assert _completion(again_events)["output"]["changed"] is False
    version = bao.secrets.kv.v2.read_secret_metadata(f"dev/{system}/{service}", mount_point="secret")
    assert version["data"]["current_version"] == metadata["data"]["current_version"]

    # Golden Path saw an authenticated Backstage plugin (the scaffolder), not an anonymous caller.
    run = _goldenpath_run(stack, service, status="succeeded", expected=2)
    assert run["caller"] == "backstage:scaffolder"
    assert run["context"] == {"via": "backstage-distributed-actions"}
    event = _audit_event(stack, run["id"])
    assert event["actor_caller"] == "backstage:scaffolder"
    assert event["result"] == "succeeded"


def test_policy_violation_in_goldenpath_fails_the_task(stack: Stack) -> None:
    # "qa" passes the published JSON Schema (a DNS label), so Backstage invokes the action; Golden
    # Path's policy allows only dev/staging/prod and answers 422, which must fail the step.
    service = f"svc-{secrets.token_hex(3)}"
    task, events = _run_task(stack, {"service": service, "system": "payments", "environments": ["qa"]})

    completion = _completion(events)
    assert task["status"] == "failed", _log(events)
    assert completion["message"] == "Run completed with status: failed"
    # Backstage turns the non-2xx reply into a ResponseError whose message carries only the status;
    # Golden Path's message travels in the error body (ResponseError.cause), which the scaffolder
    # does not put into the task events (test_goldenpath_error_body_is_what_backstage_parses checks the body).
    assert completion["error"] == {"name": "ResponseError", "message": "Request failed with 422 Unprocessable Entity"}
    failed_steps = [e for e in events if e["body"].get("stepId") == "vault" and e["body"].get("status") == "failed"]
    assert failed_steps and "Request failed with 422" in failed_steps[0]["body"]["message"], _log(events)

    # Golden Path refused it for the policy reason, and recorded who asked.
    run = _goldenpath_run(stack, service, status="failed")
    assert run["caller"] == "backstage:scaffolder"
    assert "not one of" in run["error"]["detail"], run["error"]
    event = _audit_event(stack, run["id"])
    assert event["actor_caller"] == "backstage:scaffolder"
    assert event["result"] == "failed"
    assert "not one of" in event["detail"]

    bao = hvac.Client(url=stack.bao.addr, token=stack.bao.token)
    with pytest.raises(hvac.exceptions.InvalidPath):  # nothing was written for the refused request
        bao.secrets.kv.v2.list_secrets("qa/payments", mount_point="secret")


def test_goldenpath_error_body_is_what_backstage_parses(stack: Stack) -> None:
    """The same refused invocation, sent the way Backstage sends it: the reply is a Backstage error
    body, which @backstage/errors parses into ResponseError.cause (name InputError, our message)."""
    data = {"service": f"svc-{secrets.token_hex(3)}", "system": "payments", "owner": "group:default/team-a",
            "environments": ["qa"], "costCenter": "cc-1", "secretKeys": ["API_KEY"]}
    response = stack.goldenpath_api(
        "POST", f"/api/goldenpath/.backstage/actions/v1/actions/{quote(VAULT_ACTION, safe='')}/invoke", json=data)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["response"] == {"statusCode": 422}
    assert body["error"]["name"] == "InputError"
    assert "not one of" in body["error"]["message"]


def _goldenpath_run(stack: Stack, service: str, *, status: str, expected: int = 1) -> dict[str, Any]:
    response = stack.goldenpath_api("GET", "/api/v1/runs",
                                    params={"actionId": VAULT_ACTION, "status": status, "limit": 500})
    assert response.status_code == 200, response.text
    runs = [run for run in response.json()["items"] if run["input"].get("service") == service]
    assert len(runs) == expected, response.json()["items"]
    run: dict[str, Any] = runs[-1]  # newest first: the first run
    return run


def _audit_event(stack: Stack, run_id: str) -> dict[str, Any]:
    response = stack.goldenpath_api("GET", "/api/v1/audit", params={"actionId": VAULT_ACTION, "limit": 1000})
    assert response.status_code == 200, response.text
    events = [event for event in response.json()["items"] if event["run_id"] == run_id]
    assert len(events) == 1, response.json()["items"]
    event: dict[str, Any] = events[0]
    return event
