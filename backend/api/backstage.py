"""Handlers: Backstage's distributed actions protocol (list, invoke v1 raw input, invoke v2 with secrets)."""

from typing import Any

from backend.api.context import json_response, requester, services
from backend.services.runner import RunRequest


def list_actions() -> tuple[dict[str, Any], int, dict[str, str]]:
    return json_response({"actions": services().action_descriptions()}, 200)


def invoke_v1(actionId: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:  # noqa: N803
    return _invoke(actionId, body, secrets={})


def invoke_v2(actionId: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:  # noqa: N803
    return _invoke(actionId, body["input"], secrets=body.get("secrets") or {})


def _invoke(
    action_id: str, data: dict[str, Any], *, secrets: dict[str, str]
) -> tuple[dict[str, Any], int, dict[str, str]]:
    record = services().runner.run(RunRequest(
        action_id=action_id, input=data, requester=requester(), secrets=secrets,
        context={"via": "backstage-distributed-actions"},
    ))
    return json_response({"output": record["output"]}, 200)
