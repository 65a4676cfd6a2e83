"""Handlers: the inventory of provisioned resources."""

from typing import Any

from backend.api.context import json_response, services


def list_resources(service: str | None = None, kind: str | None = None) -> tuple[dict[str, Any], int, dict[str, str]]:
    return json_response({"items": services().stores.inventory.list(service=service, kind=kind)}, 200)
