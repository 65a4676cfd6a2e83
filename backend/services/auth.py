"""Authentication: static bearer tokens from configuration, and Backstage plugin tokens.

Backstage plugin tokens are ES256 JWTs (`typ: vnd.backstage.plugin`) whose `sub` is the calling
plugin; they are verified against that plugin's JWKS on the configured Backstage backend, with
keys cached and refetched when an unknown `kid` shows up.
"""

from __future__ import annotations

import hmac
import re
import threading
from dataclasses import dataclass
from typing import Any

import jwt

from backend.errors import AuthenticationError
from backend.settings import AuthSettings

PLUGIN_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
CLOCK_SKEW_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    caller: str
    user: str | None
    kind: str  # "static" or "backstage"

    def to_dict(self) -> dict[str, Any]:
        return {"caller": self.caller, "user": self.user, "kind": self.kind}


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._jwks: dict[str, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._settings.static_tokens or self._settings.backstage_url)

    def authenticate(self, token: str) -> Principal:
        for static in self._settings.static_tokens:
            if hmac.compare_digest(static.token.encode(), token.encode()):
                return Principal(caller=f"token:{static.name}", user=None, kind="static")
        if token.count(".") == 2 and self._settings.backstage_url:
            return self._verify_backstage(token)
        raise AuthenticationError("the bearer token is not valid")

    def _verify_backstage(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthenticationError("the bearer token is not a valid JWT") from None
        plugin = unverified.get("sub")
        if header.get("alg") != "ES256" or not isinstance(plugin, str) or not PLUGIN_ID.match(plugin):
            raise AuthenticationError("the bearer token is not a Backstage plugin token")
        if plugin not in self._settings.backstage_plugins:
            raise AuthenticationError(f"Backstage plugin {plugin!r} may not call Golden Path")
        try:
            key = self._jwks_client(plugin).get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=["ES256"], audience=self._settings.audience,
                options={"require": ["exp", "sub", "aud"]}, leeway=CLOCK_SKEW_SECONDS,
            )
        except jwt.PyJWKClientConnectionError:
            raise AuthenticationError("the Backstage signing keys could not be fetched") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the Backstage token was rejected: {type(exc).__name__}") from None
        return Principal(caller=f"backstage:{plugin}", user=_on_behalf_of(claims), kind="backstage")

    def _jwks_client(self, plugin: str) -> jwt.PyJWKClient:
        with self._lock:
            client = self._jwks.get(plugin)
            if client is None:
                base = str(self._settings.backstage_url).rstrip("/")
                client = jwt.PyJWKClient(
                    f"{base}/api/{plugin}/.backstage/auth/v1/jwks.json",
                    cache_keys=True, lifespan=self._settings.jwks_cache_seconds, timeout=5,
                    cooldown_duration=self._settings.jwks_refresh_cooldown_seconds,
                )
                self._jwks[plugin] = client
            return client


def _on_behalf_of(claims: dict[str, Any]) -> str | None:
    """`obo` carries the initiating user's limited token; the plugin that signed the outer token vouches for it."""
    obo = claims.get("obo")
    if not isinstance(obo, str):
        return None
    try:
        user = jwt.decode(obo, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return None
    return user if isinstance(user, str) else None
