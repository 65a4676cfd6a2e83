"""Binds connexion's bearer scheme to our Authenticator (connexion builds handlers without arguments)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from connexion.security import BearerSecurityHandler

from backend.services.auth import Authenticator


def bearer_handler_for(authenticator: Authenticator) -> type[BearerSecurityHandler]:
    async def verify(token: str) -> dict[str, Any]:
        # JWKS fetches block: keep them off the event loop.
        principal = await anyio.to_thread.run_sync(authenticator.authenticate, token)
        return {"sub": principal.caller, **principal.to_dict()}

    class BoundBearerHandler(BearerSecurityHandler):  # type: ignore[misc]
        def _resolve_func(self, security_scheme: dict[str, Any]) -> Callable[..., Any]:
            return verify

    return BoundBearerHandler
