"""Authentication: which credential calls, and which person (if any) is behind it.

- Static bearer tokens from configuration: no person; they act for the groups configured on them (or every
  owner, when admin).
- Backstage plugin tokens: ES256 JWTs (`typ: vnd.backstage.plugin`) whose `sub` is the calling plugin, verified
  against that plugin's JWKS. The person behind the call is the `obo` limited user token
  (`typ: vnd.backstage.limited-user`), verified in turn against the auth backend's keys
  (`{backstage}/api/auth/.well-known/jwks.json`); its groups are looked up later, in the catalog. A plugin call
  with no person acts only for the groups configured for that plugin.
Keys are cached and refetched when an unknown `kid` shows up; token lifetimes are bounded.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt

from backend.errors import AuthenticationError
from backend.ownership import canonical_ref
from backend.settings import AuthSettings

PLUGIN_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# ASCII only: under IGNORECASE alone, [a-z] also matches the Kelvin sign (U+212A), which lowercases to "k", so
# "user:default/alKce" would be taken for the different person "user:default/alkce"
USER_REF = re.compile(r"user:[a-z0-9][-a-z0-9_.]*/[A-Za-z0-9][-A-Za-z0-9_.]*", re.IGNORECASE | re.ASCII)
PLUGIN_TOKEN_TYPE = "vnd.backstage.plugin"  # noqa: S105 - a JWT type, not a secret
LIMITED_USER_TOKEN_TYPE = "vnd.backstage.limited-user"  # noqa: S105 - a JWT type, not a secret
USER_KEYS = "(user tokens)"  # the auth backend's keys, cached apart from any plugin's (a plugin may be named "auth")
CLOCK_SKEW_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    caller: str  # the credential: "token:<name>" or "backstage:<plugin>"
    user: str | None  # the verified person (canonical user ref); never a claim
    kind: str  # "static" or "backstage"
    groups: frozenset[str] = frozenset()  # canonical group refs the credential itself may act for
    admin: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"caller": self.caller, "user": self.user, "kind": self.kind, "groups": sorted(self.groups),
                "admin": self.admin}

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> Principal:
        return cls(caller=str(info["caller"]), user=info.get("user"), kind=str(info["kind"]),
                   groups=frozenset(info.get("groups") or ()), admin=bool(info.get("admin")))


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
                return Principal(caller=f"token:{static.name}", user=None, kind="static",
                                 groups=frozenset(static.groups), admin=static.admin)
        if token.count(".") == 2 and self._settings.backstage_url:
            return self._verify_backstage(token)
        raise AuthenticationError("the bearer token is not valid")

    def _verify_backstage(self, token: str) -> Principal:
        header, unverified = _unverified(token)
        plugin = unverified.get("sub")
        if header.get("typ") != PLUGIN_TOKEN_TYPE or not isinstance(plugin, str) or not PLUGIN_ID.fullmatch(plugin):
            raise AuthenticationError("the bearer token is not a Backstage plugin token")
        if plugin not in self._settings.backstage_plugins:
            raise AuthenticationError(f"Backstage plugin {plugin!r} may not call Golden Path")
        claims = self._verified(token, jwks_plugin=plugin, audience=self._settings.audience,
                                max_lifetime=self._settings.max_plugin_token_seconds, what="plugin")
        obo = claims.get("obo")
        if obo is None:
            groups = self._settings.plugin_groups.get(plugin, ())
            return Principal(caller=f"backstage:{plugin}", user=None, kind="backstage", groups=frozenset(groups))
        if not isinstance(obo, str):
            raise AuthenticationError("the Backstage token's obo claim is not a token")
        return Principal(caller=f"backstage:{plugin}", user=self._verify_user(obo), kind="backstage")

    def _verify_user(self, obo: str) -> str:
        """The person behind the call: the limited user token, signed by the auth backend."""
        header, _ = _unverified(obo)
        if header.get("typ") != LIMITED_USER_TOKEN_TYPE:
            raise AuthenticationError("the Backstage token's obo claim is not a limited user token")
        claims = self._verified(obo, jwks_plugin=USER_KEYS, audience=None,
                                max_lifetime=self._settings.max_user_token_seconds, what="user")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not USER_REF.fullmatch(subject):
            raise AuthenticationError("the Backstage user token does not name a user entity")
        return canonical_ref(subject, default_kind="user")

    def _verified(
        self, token: str, *, jwks_plugin: str, audience: str | None, max_lifetime: int, what: str,
    ) -> dict[str, Any]:
        required = ["exp", "iat", "sub", *(["aud"] if audience else [])]
        try:
            key = self._jwks_client(jwks_plugin).get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=["ES256"], audience=audience, leeway=CLOCK_SKEW_SECONDS,
                options={"require": required, "verify_aud": audience is not None},
            )
        except jwt.PyJWKClientConnectionError:
            raise AuthenticationError("the Backstage signing keys could not be fetched") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the Backstage {what} token was rejected: {type(exc).__name__}") from None
        _check_lifetime(claims, max_lifetime=max_lifetime, what=what)
        return claims

    def _jwks_client(self, plugin: str) -> jwt.PyJWKClient:
        with self._lock:
            client = self._jwks.get(plugin)
            if client is None:
                base = str(self._settings.backstage_url).rstrip("/")
                url = (f"{base}/api/auth/.well-known/jwks.json" if plugin == USER_KEYS
                       else f"{base}/api/{plugin}/.backstage/auth/v1/jwks.json")
                client = jwt.PyJWKClient(
                    url, cache_keys=True, lifespan=self._settings.jwks_cache_seconds, timeout=5,
                    cooldown_duration=self._settings.jwks_refresh_cooldown_seconds,
                )
                self._jwks[plugin] = client
            return client


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthenticationError("the bearer token is not a valid JWT") from None
    if header.get("alg") != "ES256":
        raise AuthenticationError("the bearer token is not signed the way Backstage signs (ES256)")
    return header, claims


def _check_lifetime(claims: dict[str, Any], *, max_lifetime: int, what: str) -> None:
    """A stolen token is only as dangerous as it is long-lived: refuse lifetimes Backstage never issues."""
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise AuthenticationError(f"the Backstage {what} token has no valid iat/exp")
    longest = max_lifetime + CLOCK_SKEW_SECONDS
    if expires - issued > longest or expires > time.time() + longest:
        raise AuthenticationError(f"the Backstage {what} token lives longer than {max_lifetime} s")
    if issued > time.time() + CLOCK_SKEW_SECONDS:
        raise AuthenticationError(f"the Backstage {what} token is issued in the future")
