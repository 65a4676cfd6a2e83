"""Handlers: the audit trail."""

from typing import Any

from backend.api.context import json_response, requester, services
from backend.errors import NotAllowedError
from backend.services.audit import verify


def list_events(
    after: int = 0, limit: int = 100, actionId: str | None = None  # noqa: N803
) -> tuple[dict[str, Any], int, dict[str, str]]:
    return json_response({"items": services().stores.audit.list(after=after, limit=limit, action_id=actionId)}, 200)


def verify_chain() -> tuple[dict[str, Any], int, dict[str, str]]:
    # a full verification reads every event (and, with a transit key, calls Vault once per event): admins only
    if not requester().admin:
        raise NotAllowedError("verifying the whole audit chain is for platform admins", rule="admin-only")
    return json_response(verify(services().stores.audit).to_dict(), 200)
