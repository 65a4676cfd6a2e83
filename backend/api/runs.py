"""Handlers: running actions and reading runs."""

from typing import Any

from backend.api.context import json_response, requester, services
from backend.errors import NotFoundError
from backend.services.runner import RunRequest


def create_run(actionId: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:  # noqa: N803
    context = body.get("context") or {}
    record = services().runner.run(RunRequest(
        action_id=actionId, input=body["input"], requester=requester(context.get("user")),
        dry_run=bool(body.get("dryRun", False)), idempotency_key=body.get("idempotencyKey"), context=context,
    ))
    return json_response(record, 200 if record.get("replayed") else 201)


def list_runs(
    limit: int = 50, before: str | None = None, actionId: str | None = None,  # noqa: N803
    status: str | None = None,
) -> tuple[dict[str, Any], int, dict[str, str]]:
    items = services().stores.runs.list(limit=limit, before=before, action_id=actionId, status=status)
    return json_response({"items": items}, 200)


def get_run(runId: str) -> tuple[dict[str, Any], int, dict[str, str]]:  # noqa: N803
    record = services().stores.runs.get(runId)
    if record is None:
        raise NotFoundError(f"no run with id {runId}")
    return json_response(record, 200)
