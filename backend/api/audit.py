"""Handlers: the audit trail."""

from typing import Any

from backend.api.context import json_response, services
from backend.services.audit import verify


def list_events(
    after: int = 0, limit: int = 100, actionId: str | None = None  # noqa: N803
) -> tuple[dict[str, Any], int, dict[str, str]]:
    return json_response({"items": services().stores.audit.list(after=after, limit=limit, action_id=actionId)}, 200)


def verify_chain() -> tuple[dict[str, Any], int, dict[str, str]]:
    return json_response(verify(services().stores.audit).to_dict(), 200)
