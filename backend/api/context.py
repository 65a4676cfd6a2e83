"""Access to the composition root's services and the authenticated principal from inside a handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connexion.context import context
from flask import current_app

from backend.plugin_api import Requester
from backend.services.auth import Principal

if TYPE_CHECKING:
    from backend.app import Services


def services() -> Services:
    found: Services = current_app.extensions["goldenpath"]
    return found


def requester(claimed_user: str | None = None) -> Requester:
    """Who the request acts as: the credential that authenticated, the person a verified Backstage `obo` token
    names (with their groups from the catalog), and, separately, the user a caller merely claims to act for
    (the REST API's context.user: recorded as a claim, it grants nothing)."""
    info: dict[str, Any] = context.get("token_info") or {}
    if "caller" not in info:
        return Requester(user=None, caller="anonymous", claimed_user=claimed_user)
    return services().identities.requester(Principal.from_dict(info), claimed_user=claimed_user)


def json_response(body: dict[str, Any], status: int = 200) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Operations also declare problem+json responses, so connexion needs the content type named."""
    return body, status, {"Content-Type": "application/json"}
