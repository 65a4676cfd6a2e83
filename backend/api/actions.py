"""Handlers: the action catalogue."""

from typing import Any

from backend.api.context import json_response, services
from backend.services.schema_export import describe


def list_actions() -> tuple[dict[str, Any], int, dict[str, str]]:
    return json_response({"items": services().action_descriptions()}, 200)


def get_action(actionId: str) -> tuple[dict[str, Any], int, dict[str, str]]:  # noqa: N803 - connexion passes spec names
    return json_response(describe(services().registry.get(actionId)), 200)
