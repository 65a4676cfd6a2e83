"""Access to the composition root's services and the authenticated principal from inside a handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connexion.context import context
from flask import current_app

from backend.plugin_api import Requester

if TYPE_CHECKING:
    from backend.app import Services


def services() -> Services:
    found: Services = current_app.extensions["goldenpath"]
    return found


def requester(on_behalf_of: str | None = None) -> Requester:
    """The caller is who authenticated. The user is the one a Backstage token vouches for (`obo`), else the
    one a static-token caller says it acts for (recorded as its claim, next to the caller)."""
    info: dict[str, Any] = context.get("token_info") or {}
    return Requester(user=info.get("user") or on_behalf_of, caller=str(info.get("caller", "anonymous")))


def json_response(body: dict[str, Any], status: int = 200) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Operations also declare problem+json responses, so connexion needs the content type named."""
    return body, status, {"Content-Type": "application/json"}
