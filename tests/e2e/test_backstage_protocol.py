"""Backstage's side of the distributed actions protocol, live: the scaffolder lists every Golden Path action
with its schemas, calls them with plugin tokens Golden Path verifies, and gets errors in the shape
@backstage/errors parses."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import pytest

from backend.services.registry import builtin_actions
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500),  # the first run includes `npm ci`
              pytest.mark.xdist_group("backstage")]  # under pytest-xdist one worker runs them all: one stack


def test_the_scaffolder_lists_every_goldenpath_action_with_its_schemas(stack: Stack) -> None:
    response = stack.backstage_api("GET", "/api/scaffolder/v2/actions")
    assert response.status_code == 200, response.text
    listed = {action["id"]: action for action in response.json() if action["id"].startswith("goldenpath:")}
    assert set(listed) == {action.id for action in builtin_actions()}
    plan = listed["goldenpath:platform:service:plan"]
    assert {"service", "system", "owner", "environments", "costCenter", "description"} <= set(
        plan["schema"]["input"]["required"])
    assert plan["schema"]["input"]["additionalProperties"] is False
    assert "summary" in plan["schema"]["output"]["properties"] and plan["description"]


def test_goldenpath_errors_are_the_body_backstage_parses_and_the_status_line_carries_the_message(
    stack: Stack,
) -> None:
    """Sent the way the scaffolder sends it: the body is a Backstage error (ResponseError.cause), and the reason
    phrase, which is all the task log shows, is our message."""
    action = "goldenpath:vault:secrets-path:create"
    data = {"service": f"svc-{secrets.token_hex(3)}", "system": "payments", "owner": "group:default/team-a",
            "environments": ["qa"], "costCenter": "cc-1234", "secretKeys": ["API_KEY"]}
    response = stack.goldenpath_api(
        "POST", f"/api/goldenpath/.backstage/actions/v1/actions/{quote(action, safe='')}/invoke", json=data)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["response"] == {"statusCode": 422}
    assert body["error"]["name"] == "InputError"
    assert body["error"]["message"] == "environments.0: environment 'qa' is not one of dev, prod"
    assert response.reason == f"InputError: {body['error']['message']}"
